/**
 * The device page's messages: its last raw messages as they arrived
 * (`GET /v1/devices/{id}/raw`) and its quarantined ones with their reason
 * (`GET /v1/quarantine?device=`). Each payload shown as text when it is printable UTF-8,
 * else in base64, with the `decode` command to run on it. A query still running (202 on
 * Athena) shows "loading" and is resumed with its `next` at the next refresh, not asked again.
 * Both are Athena queries on AWS: asked again when the device's last reading changed, or
 * a minute after they were last asked, not at every refresh of the page.
 */
import type { Api } from './api.ts';
import { ago, h } from './dom.ts';
import type { QuarantineExample, QuarantinePage, QueryPage, RawMessage } from './types.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const LAST_MESSAGES = 10;
/** Characters of a payload shown in the table; the decode command carries all of it. */
const SHOWN_CHARS = 300;
/** The sections are asked again at least this often, else only when the last reading changes. */
const REDRAW_MS = 60_000;

/**
 * The range asked for the last messages: from an hour before the device's last reading
 * to now, a day at most (the raw table is read by the hour, every device's messages in
 * it). Not up to the reading's time only: its time is the device's clock, and a message
 * arrives after it (a batch, a retry). Without a last reading, the route's default day.
 */
export function rawRange(lastSeen: string | null, now: number): { from?: number; to?: number } {
  const seen = lastSeen === null ? Number.NaN : Date.parse(lastSeen);
  if (!Number.isFinite(seen)) return {};
  const from = Math.min(seen, now) - HOUR;
  return { from, to: Math.min(now + 1000, from + DAY) };
}

/** A payload as text when its bytes are printable UTF-8, else as it came (base64). */
export function payloadText(base64: string): { text: string; encoding: 'text' | 'base64'; bytes: number } {
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  } catch {
    return { text: base64, encoding: 'base64', bytes: 0 };
  }
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: showing control characters as text is what this refuses
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text))
      return { text, encoding: 'text', bytes: bytes.length };
  } catch {
    // Not UTF-8: shown in base64.
  }
  return { text: base64, encoding: 'base64', bytes: bytes.length };
}

function payloadCell(base64: string) {
  const { text, encoding, bytes } = payloadText(base64);
  const shown = text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
  return h(
    'td',
    { class: 'payload', 'data-encoding': encoding },
    h('code', {}, shown),
    h('small', {}, ` ${encoding === 'base64' ? 'base64, ' : ''}${bytes} bytes`),
  );
}

/** The decode command, in a disclosure with a button that copies it. */
function decodeCell(command: string | null, messageId: string | null) {
  if (command === null) return h('td', {}, '');
  const code = h('code', { class: 'command' }, command);
  const copy = h(
    'button',
    { type: 'button', 'aria-label': `Copy the decode command of message ${messageId ?? ''}` },
    'Copy',
  );
  copy.addEventListener('click', () => {
    const done = () => {
      copy.textContent = 'Copied';
    };
    // Without clipboard access (an insecure origin, a refusal): the command selected, for Ctrl+C.
    const select = () => {
      const range = document.createRange();
      range.selectNodeContents(code);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
    };
    if (navigator.clipboard) navigator.clipboard.writeText(command).then(done, select);
    else select();
  });
  return h('td', {}, h('details', {}, h('summary', {}, 'Decode command'), code, ' ', copy));
}

function note(text: string) {
  return h('p', { class: 'note' }, text);
}

function messagesTable(id: string, rows: readonly RawMessage[]) {
  if (rows.length === 0)
    return note(
      'No message from this device in the hour before its last reading or since. Messages posted to /v1/telemetry name their devices per reading and are not listed here; their readings are.',
    );
  return h(
    'table',
    { class: 'messages', 'data-rows': rows.length },
    h('caption', { class: 'visually-hidden' }, `The last messages of ${id}, newest first`),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['Received', 'Way in', 'Topic', 'Payload', 'Warnings', 'Decode'].map((c) =>
          h('th', { scope: 'col' }, c),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      ...rows.map((m) =>
        h(
          'tr',
          { 'data-message': m.messageId ?? '' },
          h('td', { title: m.receivedAt ?? '' }, m.receivedAt ? ago(m.receivedAt) : ''),
          h('td', {}, m.source ?? ''),
          h('td', {}, h('code', {}, m.topic ?? '')),
          payloadCell(m.payload),
          h(
            'td',
            { class: 'warnings' },
            m.warnings.length === 0 ? '' : h('ul', {}, ...m.warnings.map((w) => h('li', {}, w))),
          ),
          decodeCell(m.decode, m.messageId),
        ),
      ),
    ),
  );
}

function quarantineTable(id: string, rows: readonly QuarantineExample[]) {
  if (rows.length === 0) return h('p', { 'data-empty': 'quarantine' }, 'None in the last 24 h.');
  return h(
    'table',
    { class: 'messages', 'data-rows': rows.length },
    h(
      'caption',
      { class: 'visually-hidden' },
      `Quarantined messages of ${id} with their reason, newest first`,
    ),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['Received', 'Way in', 'Reason', 'Payload', 'Decode'].map((c) => h('th', { scope: 'col' }, c)),
      ),
    ),
    h(
      'tbody',
      {},
      ...rows.map((q) =>
        h(
          'tr',
          { 'data-quarantine': q.reasonCode ?? '' },
          h('td', { title: q.receivedAt ?? '' }, q.receivedAt ? ago(q.receivedAt) : ''),
          h('td', {}, q.source ?? ''),
          h('td', { class: 'reason' }, `${q.reasonCode ?? ''}: ${q.reason ?? ''}`),
          payloadCell(q.payload),
          decodeCell(q.decode, q.messageId),
        ),
      ),
    ),
  );
}

/**
 * Draws both sections, and returns the function that redraws them (at each refresh of
 * the page), resuming a query that was still running.
 */
export function deviceMessages(
  api: Api,
  id: string,
  messages: HTMLElement,
  quarantined: HTMLElement,
  signal: AbortSignal,
) {
  const pending: { raw?: string; quarantine?: string } = {};
  let drawn: { lastSeen: string | null; at: number } | undefined;
  const loading = () => note('Loading: the query is still running; it shows at the next refresh.');
  return async (lastSeen: string | null) => {
    const now = Date.now();
    const waiting = pending.raw !== undefined || pending.quarantine !== undefined;
    if (!waiting && drawn && drawn.lastSeen === lastSeen && now - drawn.at < REDRAW_MS) return;
    // While a query runs, only it is asked again (with its `next`); null: not asked, kept as drawn.
    const [raw, quarantine] = await Promise.all([
      waiting && pending.raw === undefined
        ? null
        : api.optional<QueryPage<RawMessage>>(
            `/v1/devices/${encodeURIComponent(id)}/raw`,
            pending.raw === undefined
              ? { ...rawRange(lastSeen, now), limit: LAST_MESSAGES }
              : { next: pending.raw, limit: LAST_MESSAGES },
          ),
      waiting && pending.quarantine === undefined
        ? null
        : api.optional<QuarantinePage>('/v1/quarantine', {
            device: id,
            limit: LAST_MESSAGES,
            next: pending.quarantine,
          }),
    ]);
    if (signal.aborted) return;
    if (!waiting) drawn = { lastSeen, at: now };
    if (raw !== null) {
      pending.raw = raw?.running ? raw.next : undefined;
      messages.dataset.state = raw === undefined ? 'absent' : raw.running ? 'loading' : 'loaded';
      messages.replaceChildren(
        raw === undefined
          ? note('Raw messages need the newer API (GET /v1/devices/{id}/raw).')
          : raw.running
            ? loading()
            : messagesTable(id, raw.rows),
      );
    }
    if (quarantine !== null) {
      pending.quarantine = quarantine?.running ? quarantine.next : undefined;
      quarantined.dataset.state =
        quarantine === undefined ? 'absent' : quarantine.running ? 'loading' : 'loaded';
      quarantined.replaceChildren(
        quarantine === undefined
          ? note('Quarantined messages need the newer API (GET /v1/quarantine).')
          : quarantine.running
            ? loading()
            : quarantineTable(id, quarantine.examples ?? []),
      );
    }
  };
}
