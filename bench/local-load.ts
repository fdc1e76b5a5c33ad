/**
 * The device side of `local.e2e.*`, in its own process as real devices would be:
 * `tsx bench/local-load.ts <mqttPort> <devices> <durationMs> [<rate> [<inFlight>]]`
 * connects one MQTT client per device and, for the given time, publishes QoS 1 readings
 * at `rate` messages a second in all (0 or none: as fast as the acknowledgements allow),
 * each with its device time (`$ts`, distinct per device) and a sequence number. Each
 * device has up to `inFlight` publishes awaiting their PUBACK (default 1: each waits for
 * the last one's). Prints `{ "sent": n, "startedAt": epochMs, "publishMs": ms }`, `sent`
 * counting acknowledged messages, `publishMs` up to the last acknowledgement.
 */
import mqtt from 'mqtt';

const [port, devices, durationMs, rate = 0, inFlight = 1] = process.argv.slice(2).map(Number);
if (!port || !devices || !durationMs || !(inFlight >= 1)) {
  process.stderr.write(
    'usage: tsx bench/local-load.ts <mqttPort> <devices> <durationMs> [<rate> [<inFlight>]]\n',
  );
  process.exit(2);
}
const clients = await Promise.all(
  Array.from({ length: devices }, (_, i) =>
    mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `load-${i}` }),
  ),
);
let sent = 0;
const startedAt = Date.now();
const stopAt = startedAt + durationMs;
await Promise.all(
  clients.map(async (client, i) => {
    let last = 0;
    // Paced: this device's n-th message is due n / (rate / devices) seconds after the start.
    const everyMs = rate > 0 ? (1000 * devices) / rate : 0;
    const waiting = new Set<Promise<void>>();
    for (let seq = 0; Date.now() < stopAt; seq++) {
      const due = startedAt + seq * everyMs;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      // One message per device per millisecond at most: device times stay distinct.
      let ts = Date.now();
      if (ts <= last) ts = last + 1;
      last = ts;
      const acknowledged = client
        .publishAsync(`dt/load/load-${i}`, JSON.stringify({ $ts: ts, seq, temp: 20 }), { qos: 1 })
        .then(() => {
          sent++;
          waiting.delete(acknowledged);
        });
      waiting.add(acknowledged);
      if (waiting.size >= inFlight) await Promise.race(waiting);
    }
    await Promise.all(waiting);
  }),
);
const publishMs = Date.now() - startedAt;
await Promise.all(clients.map((c) => c.endAsync()));
process.stdout.write(`${JSON.stringify({ sent, startedAt, publishMs })}\n`);
