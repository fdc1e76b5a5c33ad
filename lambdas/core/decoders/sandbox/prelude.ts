/** The sandbox's prelude: the JavaScript that runs in each engine before the codec. */
import type { EngineSpec } from './protocol.ts';

/**
 * Runs first in every engine: keeps the builtins the protocol needs out of the
 * codec's reach (it may replace `JSON` or `Function.prototype.call` for itself), calls
 * the codec's entry point and hands back JSON text. Its two functions are returned to
 * the host, never put on the global object.
 */
export function preludeSource(spec: EngineSpec): string {
  return `(function (parse, stringify, String, Date, isArray, create) {
  'use strict';
  // The prelude's own objects have no prototype: a codec's Object.prototype.toJSON cannot reach them.
  function record(key, value, key2, value2) {
    var o = create(null);
    o[key] = value;
    if (key2 !== undefined) o[key2] = value2;
    return o;
  }
  var maxOutput = ${spec.limits.maxOutputBytes};
  var normalize = ${spec.normalize ? 'true' : 'false'};
  function check(key, value) {
    if (typeof value === 'number' && (value !== value || value === 1 / 0 || value === -1 / 0)) {
      throw new Error('returned ' + value + ' at "' + key + '"');
    }
    if (typeof value === 'function') throw new Error('returned a function at "' + key + '"');
    if (typeof value === 'bigint') throw new Error('returned a BigInt at "' + key + '"');
    if (typeof value === 'symbol') throw new Error('returned a symbol at "' + key + '"');
    return value;
  }
  function entry() {
    if (typeof decodeUplink === 'function') return 'decodeUplink';
    if (typeof Decoder === 'function') return 'Decoder';
    if (typeof Decode === 'function') return 'Decode';
    return '';
  }
  function said(error, key) {
    try {
      var value = error !== null && typeof error === 'object' ? error[key] : key === 'message' ? error : '';
      return value === undefined ? '' : String(value);
    } catch (e) {
      return key === 'message' ? 'an unprintable error' : '';
    }
  }
  function warningsOf(result) {
    return result !== null && typeof result === 'object' && isArray(result.warnings) ? result.warnings : [];
  }
  function run(text) {
    try {
      var input = parse(text);
      var bytes = input.bytes;
      var fPort = input.fPort;
      var result;
      var found = entry();
      if (found === 'decodeUplink') {
        result = decodeUplink({ bytes: bytes, fPort: fPort, recvTime: new Date(input.recvTime), variables: {} });
      } else if (found === 'Decoder') {
        result = { data: Decoder(bytes, fPort) };
      } else if (found === 'Decode') {
        result = { data: Decode(fPort, bytes, {}) };
      } else {
        throw new Error('the codec defines no decodeUplink function');
      }
      if (normalize && typeof normalizeUplink === 'function' && result !== null && typeof result === 'object' &&
          !(isArray(result.errors) && result.errors.length > 0)) {
        var normalized = normalizeUplink({ data: result.data });
        var ok = normalized !== null && typeof normalized === 'object';
        result = {
          data: ok ? normalized.data : normalized,
          warnings: warningsOf(result).concat(warningsOf(normalized)),
          errors: ok ? normalized.errors : undefined,
        };
      }
      var out = stringify(record('result', result === undefined ? null : result), check);
      return out.length > maxOutput ? 's' + out.length : 'r' + out;
    } catch (error) {
      return 't' + stringify(record('name', said(error, 'name').slice(0, 50), 'message', said(error, 'message').slice(0, 500)));
    }
  }
  function describe() {
    var list = typeof examples === 'undefined' ? '[]' : stringify(examples, check);
    return stringify(record('entry', entry(), 'examples', list));
  }
  return [run, describe];
})(JSON.parse, JSON.stringify, String, Date, Array.isArray, Object.create)`;
}
