/**
 * What keeps a flood of sockets from starving the local servers' real clients: a cap on
 * open connections that, when full, closes the oldest connection not in use (idle, or
 * its HTTP headers or MQTT CONNECT never finished) to take the new one, and a log that
 * says so without writing a line per socket.
 */
import type { Socket } from 'node:net';

export interface ConnectionCap {
  /** Takes `socket`, closing the oldest connection not in use when at the cap; false (and `socket` closed) when every one is in use. */
  admit(socket: Socket): boolean;
  /** Connections open now. */
  readonly size: number;
}

/**
 * At most `max` open connections. Every process shares one file-descriptor limit: a cap
 * keeps one server's junk sockets from taking the descriptors the other server, DuckDB
 * and the lake files need (EMFILE resets every new connection).
 */
export function connectionCap(options: {
  readonly max: number;
  /** True while a connection does real work (a request being answered, an MQTT session); never closed to make room. */
  readonly inUse: (socket: Socket) => boolean;
  /** Told of each connection closed to make room (`evicted`) or refused because all were in use. */
  readonly onFull?: (what: 'evicted' | 'refused', open: number) => void;
}): ConnectionCap {
  // A Set iterates in insertion order: the first socket not in use is the oldest.
  const open = new Set<Socket>();
  return {
    admit(socket) {
      if (open.size >= options.max) {
        let evicted: Socket | undefined;
        for (const candidate of open) {
          if (!options.inUse(candidate)) {
            evicted = candidate;
            break;
          }
        }
        if (!evicted) {
          socket.destroy();
          options.onFull?.('refused', open.size);
          return false;
        }
        open.delete(evicted);
        evicted.destroy();
        options.onFull?.('evicted', open.size);
      }
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      return true;
    },
    get size() {
      return open.size;
    },
  };
}

/**
 * A log for events that come in floods: the first is written at once, the ones in the
 * next `everyMs` are counted and reported with the first one after that.
 */
export function floodLog(log: (line: string) => void, everyMs = 10_000, now: () => number = Date.now) {
  let last = Number.NEGATIVE_INFINITY;
  let unsaid = 0;
  return (line: string) => {
    const t = now();
    if (t - last < everyMs) {
      unsaid++;
      return;
    }
    log(unsaid > 0 ? `${line} (and ${unsaid} more like it since the last such line)` : line);
    last = t;
    unsaid = 0;
  };
}
