/**
 * The simulator over MQTT/TLS with a device certificate, as against AWS IoT Core: a
 * broker that requires client certificates from a test CA generated here (openssl),
 * and the simulator connecting as a provisioned thing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type TLSSocket } from 'node:tls';
import { Aedes } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSimulation } from '../../tools/simulator/run.ts';

const dir = mkdtempSync(join(tmpdir(), 'tls-'));
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A CA, a server certificate for 127.0.0.1 and a device certificate whose CN is the thing name. */
function makeCertificates() {
  const selfSigned = (name: string, subject: string) =>
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-subj',
      subject,
    );
  const sign = (name: string, subject: string, extension?: string) => {
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subject,
    );
    const ext: string[] = [];
    if (extension) {
      writeFileSync(file(`${name}.ext`), extension);
      ext.push('-extfile', `${name}.ext`);
    }
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      ...ext,
    );
  };
  selfSigned('ca', '/CN=test-ca');
  sign('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1');
  sign('device', '/CN=thermo-7');
  // A certificate no CA of ours signed.
  selfSigned('rogue', '/CN=thermo-7');
}

describe('simulator over MQTT/TLS with a device certificate', () => {
  const received: { clientId: string; topic: string; subject: string }[] = [];
  let close: () => Promise<void>;
  let port: number;

  beforeAll(async () => {
    makeCertificates();
    const broker = await Aedes.createBroker({
      published(packet, client, done) {
        if (client) {
          const socket = (client as unknown as { conn: TLSSocket }).conn;
          received.push({
            clientId: client.id,
            topic: packet.topic,
            subject: String(socket.getPeerCertificate().subject?.CN),
          });
        }
        done();
      },
    });
    const server = createServer(
      {
        key: readFileSync(file('server.key')),
        cert: readFileSync(file('server.pem')),
        ca: readFileSync(file('ca.pem')),
        requestCert: true,
        rejectUnauthorized: true,
      },
      broker.handle,
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    close = async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    };
  });
  afterAll(async () => close?.());

  it('connects as the thing (client id = thing name) with its certificate and publishes to its own topic', async () => {
    const result = await runSimulation({
      devices: 1,
      deviceIds: ['thermo-7'],
      rate: 50,
      count: 3,
      format: 'json',
      type: 'thermo',
      silentShare: 0,
      seed: 1,
      mqttUrl: `mqtts://127.0.0.1:${port}`,
      tls: { cert: file('device.pem'), key: file('device.key'), ca: file('ca.pem') },
      httpUrl: 'http://127.0.0.1:1',
    });
    expect(result).toMatchObject({ sent: 3, failed: 0 });
    expect(received).toHaveLength(3);
    expect(received[0]).toEqual({ clientId: 'thermo-7', topic: 'dt/thermo/thermo-7', subject: 'thermo-7' });
  });

  it('is refused without a certificate the broker trusts', async () => {
    await expect(
      runSimulation({
        devices: 1,
        deviceIds: ['thermo-7'],
        rate: 50,
        count: 1,
        format: 'json',
        type: 'thermo',
        silentShare: 0,
        seed: 1,
        mqttUrl: `mqtts://127.0.0.1:${port}`,
        tls: { cert: file('rogue.pem'), key: file('rogue.key'), ca: file('ca.pem') },
        httpUrl: 'http://127.0.0.1:1',
      }),
    ).rejects.toThrow(`Could not connect to mqtts://127.0.0.1:${port}`);
  });
});
