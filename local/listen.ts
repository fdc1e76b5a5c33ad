import type { Server } from 'node:net';

/** The local runtime cannot start (a port or the database file is taken), said so the user knows what to change. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/** Listens, or fails with a message that names the port, what holds it and the flag to change it. */
export function listen(
  server: Server,
  port: number,
  host: string,
  what: string,
  flag: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') {
        reject(
          new StartupError(
            `The ${what} port ${host}:${port} is taken (another broker or an earlier \`npm start\`?). Stop it or pass ${flag} <port>.`,
          ),
        );
      } else if (error.code === 'EACCES') {
        reject(
          new StartupError(`The ${what} port ${port} needs privileges here. Pass ${flag} <port> above 1023.`),
        );
      } else reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}
