/**
 * AWS's own service models (botocore's `data/<service>/<version>/service-2.json.gz`,
 * the same definitions the SDKs are generated from), used to check every request the
 * code sends against what AWS accepts: required members, lengths and value ranges,
 * patterns, enums, list and map sizes. The SDK for JavaScript v3 checks none of these
 * before sending; in-process fakes and moto accept most violations that AWS rejects.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

interface ShapeRef {
  readonly shape: string;
}

interface Shape {
  readonly type: string;
  readonly required?: readonly string[];
  readonly members?: Readonly<Record<string, ShapeRef>>;
  readonly member?: ShapeRef;
  readonly key?: ShapeRef;
  readonly value?: ShapeRef;
  readonly min?: number;
  readonly max?: number;
  readonly pattern?: string;
  readonly enum?: readonly string[];
  readonly streaming?: boolean;
  readonly union?: boolean;
  readonly document?: boolean;
}

interface ServiceModel {
  readonly metadata: { readonly serviceId: string };
  readonly operations: Readonly<Record<string, { readonly input?: ShapeRef }>>;
  readonly shapes: Readonly<Record<string, Shape>>;
}

/** A request member that AWS would refuse. */
export interface Violation {
  readonly operation: string;
  readonly member: string;
  readonly constraint: string;
}

let botocoreData: string | null | undefined;

/** Where botocore keeps its models, or null when this machine has no botocore. */
export function botocoreDataDir(): string | null {
  if (botocoreData === undefined) {
    try {
      const dir = execFileSync(
        'python3',
        ['-c', 'import botocore, os; print(os.path.join(os.path.dirname(botocore.__file__), "data"))'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      ).trim();
      botocoreData = existsSync(dir) ? dir : null;
    } catch {
      botocoreData = null;
    }
  }
  return botocoreData;
}

const byServiceId = new Map<string, ServiceModel | null>();
let directory: Map<string, string> | undefined;

/** The model whose `metadata.serviceId` is this (the SDK client's `config.serviceId`). */
export function serviceModel(serviceId: string): ServiceModel | null {
  const cached = byServiceId.get(serviceId);
  if (cached !== undefined) return cached;
  const data = botocoreDataDir();
  if (!data) return null;
  directory ??= serviceDirectory(data);
  const dir = directory.get(serviceId.toLowerCase());
  const model = dir ? loadModel(join(data, dir)) : null;
  byServiceId.set(serviceId, model);
  return model;
}

/** botocore's folder names are the service ids lowercased with dashes: a few differ. */
function serviceDirectory(data: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const name of readdirSync(data)) map.set(name.replaceAll('-', ' '), name);
  for (const [id, name] of Object.entries({ 'secrets manager': 'secretsmanager', iot: 'iot' }))
    map.set(id, name);
  return new Map([...map].map(([k, v]) => [k.toLowerCase(), v]));
}

function loadModel(serviceDir: string): ServiceModel | null {
  const versions = readdirSync(serviceDir).sort().reverse();
  for (const version of versions) {
    const gz = join(serviceDir, version, 'service-2.json.gz');
    const plain = join(serviceDir, version, 'service-2.json');
    if (existsSync(gz)) return JSON.parse(gunzipSync(readFileSync(gz)).toString('utf8')) as ServiceModel;
    if (existsSync(plain)) return JSON.parse(readFileSync(plain, 'utf8')) as ServiceModel;
  }
  return null;
}

const patterns = new Map<string, RegExp | null>();

/**
 * A model pattern as a JavaScript regular expression, matched against the whole value
 * as AWS's services match it ("Member must satisfy regular expression pattern"). Java's
 * syntax; the few patterns that do not translate are skipped.
 */
function regex(pattern: string): RegExp | null {
  if (!patterns.has(pattern)) {
    let compiled: RegExp | null = null;
    for (const flags of ['u', '']) {
      try {
        compiled = new RegExp(`^(?:${pattern})$`, flags);
        break;
      } catch {
        // Java-only syntax in this flag mode: try the other, else skip the pattern.
      }
    }
    patterns.set(pattern, compiled);
  }
  return patterns.get(pattern) ?? null;
}

/**
 * Checks an operation's input against the model. Values the SDK serializes (Date for
 * timestamps, Uint8Array or string for blobs) are taken as the SDK takes them.
 */
export function checkInput(model: ServiceModel, operation: string, input: unknown): Violation[] {
  const op = model.operations[operation];
  if (!op)
    return [
      { operation, member: '', constraint: `${model.metadata.serviceId} has no operation ${operation}` },
    ];
  const violations: Violation[] = [];
  if (!op.input) return violations;
  const report = (member: string, constraint: string) => violations.push({ operation, member, constraint });
  const visit = (ref: ShapeRef, value: unknown, path: string, depth: number) => {
    if (value === undefined || value === null || depth > 40) return;
    const shape = model.shapes[ref.shape];
    if (!shape || shape.document) return;
    const size = (n: number, what: string) => {
      if (shape.min !== undefined && n < shape.min)
        report(path, `${what} ${n} is below the minimum ${shape.min}`);
      if (shape.max !== undefined && n > shape.max)
        report(path, `${what} ${n} is above the maximum ${shape.max}`);
    };
    switch (shape.type) {
      case 'structure': {
        if (typeof value !== 'object' || Array.isArray(value)) {
          report(path, `must be a structure (${ref.shape})`);
          return;
        }
        const record = value as Record<string, unknown>;
        for (const required of shape.required ?? []) {
          if (record[required] === undefined || record[required] === null) {
            report(path ? `${path}.${required}` : required, 'is required');
          }
        }
        const present = Object.entries(record).filter(([, v]) => v !== undefined);
        if (shape.union && present.length !== 1)
          report(path, `is a union: exactly one member, got ${present.length}`);
        for (const [name, member] of present) {
          const memberRef = shape.members?.[name];
          if (!memberRef) {
            report(path ? `${path}.${name}` : name, `is not a member of ${ref.shape}`);
            continue;
          }
          visit(memberRef, member, path ? `${path}.${name}` : name, depth + 1);
        }
        return;
      }
      case 'list': {
        if (!Array.isArray(value)) {
          report(path, 'must be a list');
          return;
        }
        size(value.length, 'list length');
        value.forEach((item, i) => {
          if (shape.member) visit(shape.member, item, `${path}[${i}]`, depth + 1);
        });
        return;
      }
      case 'map': {
        if (typeof value !== 'object') {
          report(path, 'must be a map');
          return;
        }
        const entries = Object.entries(value as Record<string, unknown>);
        size(entries.length, 'map size');
        for (const [k, v] of entries) {
          if (shape.key) visit(shape.key, k, `${path}{key ${JSON.stringify(k)}}`, depth + 1);
          if (shape.value) visit(shape.value, v, `${path}[${JSON.stringify(k)}]`, depth + 1);
        }
        return;
      }
      case 'string': {
        if (typeof value !== 'string') {
          report(path, `must be a string, got ${typeof value}`);
          return;
        }
        size([...value].length, 'length');
        if (shape.enum && !shape.enum.includes(value)) {
          report(path, `${JSON.stringify(value)} is not one of ${shape.enum.join(', ')}`);
        }
        const pattern = shape.pattern === undefined ? null : regex(shape.pattern);
        if (pattern && !pattern.test(value)) {
          report(path, `${JSON.stringify(value.slice(0, 80))} does not match the pattern ${shape.pattern}`);
        }
        return;
      }
      case 'integer':
      case 'long':
      case 'float':
      case 'double': {
        if (typeof value !== 'number' || Number.isNaN(value)) {
          report(path, `must be a number, got ${typeof value}`);
          return;
        }
        if ((shape.type === 'integer' || shape.type === 'long') && !Number.isInteger(value)) {
          report(path, `${value} is not an integer`);
        }
        size(value, 'value');
        return;
      }
      case 'boolean':
        if (typeof value !== 'boolean') report(path, `must be a boolean, got ${typeof value}`);
        return;
      case 'blob': {
        if (shape.streaming) return;
        const length =
          typeof value === 'string'
            ? Buffer.byteLength(value)
            : value instanceof Uint8Array
              ? value.byteLength
              : undefined;
        if (length !== undefined) size(length, 'size in bytes');
        return;
      }
      case 'timestamp':
        if (!(value instanceof Date) && typeof value !== 'number' && typeof value !== 'string') {
          report(path, 'must be a timestamp');
        }
        return;
      default:
        return;
    }
  };
  visit(op.input, input, '', 0);
  return violations;
}
