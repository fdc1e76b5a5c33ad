/**
 * The web console: hash routes `#/` (estate), `#/device/<id>`, `#/alerts`. The page shown
 * refreshes itself when the live stream (`GET /v1/events`, Server-Sent Events) says a
 * reading or an alert arrived, at most once per `refreshMs`; without the stream, every
 * `refreshMs`.
 */
import { renderAlerts } from './alerts.ts';
import { type Api, api } from './api.ts';
import { type ConsoleConfig, loadConfig } from './config.ts';
import { renderDevice } from './device.ts';
import { h } from './dom.ts';
import { renderEstate } from './estate.ts';
import './style.css';

let current: { abort: AbortController; refresh?: () => Promise<void> } | undefined;
/** True while the event stream is open: changes are then pushed, not polled. */
let streaming = false;
let lastRefresh = 0;
let pending: ReturnType<typeof setTimeout> | undefined;

function refreshNow() {
  const live = document.getElementById('live') as HTMLElement;
  const refresh = current?.refresh;
  if (!refresh) return;
  lastRefresh = Date.now();
  refresh()
    .then(() => {
      live.textContent = `${streaming ? 'live' : 'polling'}: updated ${new Date().toLocaleTimeString('en-GB')}`;
    })
    .catch((error: Error) => {
      live.textContent = `update failed: ${error.message}`;
    });
}

/** A change was pushed: refresh now, or once `refreshMs` has passed since the last refresh. */
function changed(refreshMs: number) {
  if (pending !== undefined) return;
  pending = setTimeout(
    () => {
      pending = undefined;
      refreshNow();
    },
    Math.max(0, lastRefresh + refreshMs - Date.now()),
  );
}

/** The live stream, where the API has it and the credential can travel in its URL (EventSource sends no headers). */
function openStream(config: ConsoleConfig, refreshMs: number) {
  if (config.auth.kind !== 'bearer') return;
  const source = new EventSource(
    `${config.apiBase}/v1/events?token=${encodeURIComponent(config.auth.token)}`,
  );
  source.addEventListener('open', () => {
    streaming = true;
  });
  source.addEventListener('reading', () => changed(refreshMs));
  source.addEventListener('alert', () => changed(refreshMs));
  source.addEventListener('error', () => {
    // A route that is not there (404) or a refusal closes it for good: polling takes over.
    if (source.readyState === EventSource.CLOSED) streaming = false;
  });
}

async function route(client: Api) {
  const main = document.getElementById('main') as HTMLElement;
  const live = document.getElementById('live') as HTMLElement;
  current?.abort.abort();
  const abort = new AbortController();
  current = { abort };
  const hash = location.hash.replace(/^#/, '') || '/';
  // `#/device/<id>` or `#/device/<id>?range=7d`: a link to a device over a range.
  const device = /^\/device\/([^?]+)(?:\?(.*))?$/.exec(hash);
  delete main.dataset.loaded;
  try {
    const refresh = device
      ? await renderDevice(main, client, decodeURIComponent(device[1] ?? ''), abort.signal, {
          range: new URLSearchParams(device[2] ?? '').get('range') ?? undefined,
        })
      : hash === '/alerts'
        ? await renderAlerts(main, client, abort.signal)
        : await renderEstate(main, client, abort.signal);
    if (abort.signal.aborted) return;
    document.title = `${document.getElementById('page-title')?.textContent ?? 'Console'} · iot-pipeline`;
    current.refresh = refresh;
    lastRefresh = Date.now();
    live.textContent = `updated ${new Date().toLocaleTimeString('en-GB')}`;
  } catch (error) {
    main.replaceChildren(h('p', { role: 'alert', class: 'error' }, (error as Error).message));
  }
}

async function start() {
  const config = await loadConfig();
  const client = api(config);
  const refreshMs = config.refreshMs ?? 5000;
  window.addEventListener('hashchange', () => void route(client));
  openStream(config, refreshMs);
  setInterval(() => {
    if (!streaming) refreshNow();
  }, refreshMs);
  await route(client);
}

start().catch((error: Error) => {
  document.getElementById('main')?.replaceChildren(h('p', { role: 'alert', class: 'error' }, error.message));
});
