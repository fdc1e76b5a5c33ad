/**
 * Device passwords for the local MQTT broker (`start --mqtt-auth`), kept in
 * `<data>/device-credentials.json`: `devices add <id>` creates one, `devices remove <id>`
 * deletes it, and the running broker reads the file again when it changes.
 *
 * A password is 32 random bytes (base64url), shown once; the file keeps only its
 * SHA-256. A slow hash (scrypt) guards guessable, human-chosen passwords; these are
 * 256 random bits, which no one can brute-force from the hash, so scrypt would add
 * nothing but its cost (tens of milliseconds and megabytes on the broker's thread for
 * every CONNECT, including every refused one). Hashes are compared with timingSafeEqual.
 *
 * The file is written whole to a temporary file (mode 0600) and renamed over the old
 * one, so the broker never reads half a file.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { DEVICE_ID_PATTERN, isObject, truncate } from '../lambdas/core/ids.ts';
import { dataPaths } from './data-dir.ts';
import { writeWhole } from './write-whole.ts';

/** The credentials file's name in the data folder. */
export const DEVICE_CREDENTIALS_FILE = 'device-credentials.json';

/** Where the device credentials live under `dataDir`. */
export function deviceCredentialsFile(dataDir: string): string {
  return dataPaths(dataDir).deviceCredentialsFile;
}

/** The credentials file cannot be read as one: its path and what is wrong. */
export class CredentialsFileError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'CredentialsFileError';
  }
}

interface StoredDevice {
  /** `sha256:` and the base64url SHA-256 of the password. */
  readonly hash: string;
  readonly createdAt: string;
}

interface CredentialsDocument {
  readonly version: 1;
  readonly devices: Record<string, StoredDevice>;
}

const HASH = /^sha256:([A-Za-z0-9_-]{43})$/;

/** A new device password: 32 random bytes, base64url (43 characters). */
export function newDevicePassword(): string {
  return randomBytes(32).toString('base64url');
}

function digest(password: string | Buffer): Buffer {
  return createHash('sha256').update(password).digest();
}

/** Parses the file's text into the SHA-256 digest of each device's password, by device id. */
export function parseCredentials(file: string, text: string): Map<string, Buffer> {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new CredentialsFileError(file, `not JSON (${(error as Error).message})`);
  }
  if (!isObject(document) || !isObject(document.devices))
    throw new CredentialsFileError(file, 'must be {"version": 1, "devices": {...}}');
  const digests = new Map<string, Buffer>();
  for (const [deviceId, entry] of Object.entries(document.devices)) {
    if (!DEVICE_ID_PATTERN.test(deviceId))
      throw new CredentialsFileError(
        file,
        `device id "${truncate(deviceId)}" must match ${DEVICE_ID_PATTERN}`,
      );
    const hash = isObject(entry) && typeof entry.hash === 'string' ? HASH.exec(entry.hash) : null;
    if (!hash?.[1])
      throw new CredentialsFileError(
        file,
        `devices["${deviceId}"].hash must be "sha256:<43 base64url characters>"`,
      );
    digests.set(deviceId, Buffer.from(hash[1], 'base64url'));
  }
  return digests;
}

function readDocument(file: string): CredentialsDocument {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, devices: {} };
    throw error;
  }
  parseCredentials(file, text);
  const { devices } = JSON.parse(text) as CredentialsDocument;
  return { version: 1, devices };
}

/** Writes the document whole (a temporary file renamed over it), mode 0600. */
function writeDocument(file: string, document: CredentialsDocument): void {
  writeWhole(file, `${JSON.stringify(document, null, 2)}\n`);
}

function checkId(deviceId: string): void {
  if (!DEVICE_ID_PATTERN.test(deviceId))
    throw new RangeError(`device id "${truncate(deviceId)}" must match ${DEVICE_ID_PATTERN}`);
}

/**
 * Creates a password for `deviceId` and keeps its hash in the data folder; returns the
 * password (the only time anyone sees it), or `exists` when the device has one already.
 * Read, change, rename: two `add`s at the same moment can lose one (a local tool).
 */
export function addDeviceCredential(
  dataDir: string,
  deviceId: string,
  now = new Date(),
): { readonly file: string; readonly password: string } | { readonly file: string; readonly exists: true } {
  checkId(deviceId);
  const file = deviceCredentialsFile(dataDir);
  const document = readDocument(file);
  if (Object.hasOwn(document.devices, deviceId)) return { file, exists: true };
  const password = newDevicePassword();
  mkdirSync(dataDir, { recursive: true });
  writeDocument(file, {
    version: 1,
    devices: {
      ...document.devices,
      [deviceId]: { hash: `sha256:${digest(password).toString('base64url')}`, createdAt: now.toISOString() },
    },
  });
  return { file, password };
}

/** Deletes `deviceId`'s credentials; false when it had none. */
export function removeDeviceCredential(
  dataDir: string,
  deviceId: string,
): { readonly file: string; readonly removed: boolean } {
  checkId(deviceId);
  const file = deviceCredentialsFile(dataDir);
  const document = readDocument(file);
  if (!Object.hasOwn(document.devices, deviceId)) return { file, removed: false };
  const { [deviceId]: _removed, ...devices } = document.devices;
  writeDocument(file, { version: 1, devices });
  return { file, removed: true };
}

/** What the broker asks of the credentials: is this the device's password, as of the file now. */
export interface CredentialChecker {
  readonly file: string;
  /** Reads the file again if it changed (a stat, else nothing); resolves to whether it did. */
  refresh(): Promise<boolean>;
  /** How many devices have credentials, as of the last refresh. */
  size(): number;
  /** True when `password` is `deviceId`'s, as of the last refresh. */
  verify(deviceId: string, password: Buffer): boolean;
  /** The digest `deviceId` has now (to notice a removed or replaced password), or undefined. */
  digestOf(deviceId: string): Buffer | undefined;
}

/** Compared against when the device has no credentials, so that both answers take as long. */
const NO_DIGEST = Buffer.alloc(32);

/**
 * The credentials file as the running broker sees it: read at the first refresh, then
 * again whenever its inode, size or mtime change (`devices add` renames a new file in,
 * so each change is a new inode even where mtimes are coarse). A missing file means no
 * devices; a malformed one is an error, and the last good reading stays in force.
 */
export function credentialChecker(file: string): CredentialChecker {
  let version: string | undefined;
  let digests = new Map<string, Buffer>();
  return {
    file,
    async refresh() {
      let seen: string;
      try {
        const s = await stat(file, { bigint: true });
        seen = `${s.ino}:${s.size}:${s.mtimeNs}`;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        seen = 'missing';
      }
      if (seen === version) return false;
      let next = new Map<string, Buffer>();
      if (seen !== 'missing') {
        try {
          next = parseCredentials(file, await readFile(file, 'utf8'));
        } catch (error) {
          // Removed between the stat and the read: no devices.
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
      digests = next;
      version = seen;
      return true;
    },
    size: () => digests.size,
    verify(deviceId, password) {
      const expected = digests.get(deviceId);
      const match = timingSafeEqual(digest(password), expected ?? NO_DIGEST);
      return match && expected !== undefined;
    },
    digestOf: (deviceId) => digests.get(deviceId),
  };
}
