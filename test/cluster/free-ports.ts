// Prints N distinct free loopback TCP ports, one a line: each is what the kernel chose for a
// bind to port 0. All sockets stay open until every port is known, so the ports differ.
import { createServer, type Server } from 'node:net';

const count = Number(process.argv[2] ?? '1');
if (!Number.isInteger(count) || count < 1) {
  throw new Error(`free-ports.ts: the port count must be a positive integer, got ${process.argv[2]}`);
}

function listenOnFreePort(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('free-ports.ts: the socket has no TCP address'));
        return;
      }
      resolve({ server, port: address.port });
    });
  });
}

const listeners = await Promise.all(Array.from({ length: count }, listenOnFreePort));
process.stdout.write(listeners.map((listener) => `${listener.port}\n`).join(''));
await Promise.all(listeners.map((listener) => new Promise((resolve) => listener.server.close(resolve))));
