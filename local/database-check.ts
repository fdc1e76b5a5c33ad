/**
 * Is the local DuckDB file whole? Checked at every start, before the runtime takes a
 * message: a file damaged in the middle or cut short otherwise opens, answers
 * `/v1/devices`, and then fails the batches that reach the broken part (dead-lettered).
 *
 * Opening reads only the headers and the catalog, and DuckDB reads a block (verifying its
 * checksum) only when a statement needs it. A scan of every table reads every data block,
 * but not the primary-key indexes: their blocks are read by the inserts whose keys lead
 * there, so a damaged index block fails some batches and no query. Hence two checks:
 *
 * 1. every table scanned whole (`hash` of every row): DuckDB reads and verifies each data
 *    block, and says what is wrong in its own words;
 * 2. every block the header counts read from the file and its checksum verified the way
 *    DuckDB does (`src/common/checksum.cpp`), which covers the index blocks and a file
 *    cut short. This knows DuckDB's file layout (3 headers of 4 KiB, then blocks with an
 *    8-byte checksum first), so it first checks that layout on the headers (which DuckDB
 *    verifies on opening): a file of another layout (encrypted, or a future storage
 *    version) skips this step rather than being called damaged. It reads the file before
 *    DuckDB opens it (see {@link verifyBlocks}).
 *
 * A block of zeros is a block DuckDB gave back to the file system (or never wrote): free,
 * never read, so not damage, as long as there are no more of them than DuckDB counts free
 * blocks (which blocks those are takes parsing its metadata: not done). A used block
 * zeroed while DuckDB counts enough free blocks passes step 2; step 1 finds it when it
 * holds data. A free block with stale contents passes (it was written whole).
 */
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import type { DuckDBInstance } from '@duckdb/node-api';
import { StartupError } from './listen.ts';

/** The line a start fails with when the file is damaged: what is wrong, and what to do. */
export function damagedFileMessage(file: string, words: string): string {
  return `the DuckDB file ${file} is damaged (${words}): run iot-pipeline start --repair to rebuild it from the lake (the lake is the source of truth)`;
}

/** The error a failed open of the runtime's DuckDB file is reported as. */
export function openFailure(file: string, error: unknown): Error {
  const message = firstLine(error);
  if (isLockError(message)) {
    return new StartupError(
      `${file} is open in another process (an earlier \`npm start\`?). Stop it, or pass --data <dir> to use another folder.`,
    );
  }
  // Not the file's fault: the folder cannot be read or written.
  if (/permission denied/i.test(message)) return error instanceof Error ? error : new Error(message);
  return new StartupError(damagedFileMessage(file, message));
}

/** DuckDB's words when another process holds the file. */
export function isLockError(message: string): boolean {
  return /could not set lock|conflicting lock/i.test(message);
}

/**
 * Throws a StartupError saying what is damaged (and closes the database), or resolves
 * when every table reads whole and every block matches its checksum. `blocks` is what
 * {@link verifyBlocks} found, before the file was opened.
 */
export async function checkDatabase(
  database: DuckDBInstance,
  file: string,
  blocks: BlockCheck,
): Promise<void> {
  const damage = await findDamage(database, blocks);
  if (damage === undefined) return;
  database.closeSync();
  throw new StartupError(damagedFileMessage(file, damage));
}

/** What is damaged in the open database, in DuckDB's words; undefined when nothing is. */
export async function findDamage(database: DuckDBInstance, blocks: BlockCheck): Promise<string | undefined> {
  const connection = await database.connect();
  let freeBlocks: number;
  try {
    const size = await connection.runAndReadAll(
      'SELECT free_blocks FROM pragma_database_size() WHERE database_name = current_database()',
    );
    freeBlocks = Number(size.getRowObjectsJson()[0]?.free_blocks ?? 0);
    const tables = await connection.runAndReadAll(
      'SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary',
    );
    for (const { table_name } of tables.getRowObjectsJson()) {
      const name = `"${String(table_name).replaceAll('"', '""')}"`;
      await connection.run(`SELECT count(*), bit_xor(hash(t)) FROM ${name} t`);
    }
  } catch (error) {
    return firstLine(error);
  } finally {
    connection.closeSync();
  }
  if (blocks.damage !== undefined) return blocks.damage;
  if (blocks.zeroBlocks > freeBlocks)
    return `${blocks.zeroBlocks} blocks of the file are zeros, but DuckDB counts ${freeBlocks} free blocks: used blocks were wiped`;
  return undefined;
}

/** What {@link verifyBlocks} found. */
export interface BlockCheck {
  /** A block that does not match its checksum, or a file cut short. */
  readonly damage?: string;
  /** Blocks of zeros: free, as long as DuckDB counts at least as many free blocks. */
  readonly zeroBlocks: number;
}

/** The layout of a DuckDB file this check knows (storage versions 64 and later, unencrypted). */
const FILE_HEADER_SIZE = 4096;
const BLOCK_START = 3 * FILE_HEADER_SIZE;
const BLOCK_HEADER_SIZE = 8;

/**
 * Every block the active database header counts: present in the file and matching its
 * checksum, or zeros. Nothing found for a file that does not exist or is not of the
 * layout this knows.
 *
 * Read before this process opens the file with DuckDB: its lock is a POSIX record lock,
 * which a process loses when it closes any descriptor of the file, so reading it after
 * would let another process (a second `npm start`, the CLI) open it under the runtime.
 */
export function verifyBlocks(file: string): BlockCheck {
  const whole: BlockCheck = { zeroBlocks: 0 };
  if (!existsSync(file)) return whole;
  const fd = openSync(file, 'r');
  try {
    const headers = Buffer.alloc(BLOCK_START);
    // Too short for the headers: DuckDB says so when it opens the file.
    if (readSync(fd, headers, 0, BLOCK_START, 0) < BLOCK_START) return whole;
    if (headers.toString('latin1', 8, 12) !== 'DUCK') return whole;
    // Flags: encryption among them. An encrypted file's blocks are not checksummed in the clear.
    if (headers.readBigUInt64LE(20) !== 0n) return whole;
    for (let at = 0; at < BLOCK_START; at += FILE_HEADER_SIZE) {
      const stored = headers.readBigUInt64LE(at);
      // A header that does not match: another layout, or a damaged header, which DuckDB reports on opening.
      if (checksum(headers.subarray(at + BLOCK_HEADER_SIZE, at + FILE_HEADER_SIZE)) !== stored) return whole;
    }
    // The active header is the one with the higher iteration.
    const [h1, h2] = [FILE_HEADER_SIZE, 2 * FILE_HEADER_SIZE];
    const active = headers.readBigUInt64LE(h1 + 8) > headers.readBigUInt64LE(h2 + 8) ? h1 : h2;
    const blockCount = Number(headers.readBigUInt64LE(active + 32));
    const blockSize = Number(headers.readBigUInt64LE(active + 40));
    if (blockSize < 4096 || blockSize % 4096 !== 0 || blockSize > 2 ** 30) return whole;
    const expected = BLOCK_START + blockCount * blockSize;
    const size = fstatSync(fd).size;
    if (size < expected) {
      return {
        damage: `the file has ${size} bytes, but its header counts ${blockCount} blocks of ${blockSize} bytes (${expected} bytes): it was cut short`,
        zeroBlocks: 0,
      };
    }
    const block = Buffer.alloc(blockSize);
    let zeroBlocks = 0;
    for (let id = 0; id < blockCount; id++) {
      const location = BLOCK_START + id * blockSize;
      readSync(fd, block, 0, blockSize, location);
      const stored = block.readBigUInt64LE(0);
      const computed = checksum(block.subarray(BLOCK_HEADER_SIZE));
      if (computed === stored) continue;
      // All zeros: a free block given back to the file system, never read.
      if (stored === 0n && computed === EMPTY_CHECKSUM) {
        zeroBlocks++;
        continue;
      }
      return {
        damage: `Corrupt database file: computed checksum ${computed} does not match stored checksum ${stored} in block at location ${location}`,
        zeroBlocks,
      };
    }
    return { zeroBlocks };
  } finally {
    closeSync(fd);
  }
}

/** DuckDB's checksum of zeros (and of nothing): its seed. */
const EMPTY_CHECKSUM = 5381n;
const K_LO = 0x1ce4e5b9;
const K_HI = 0xbf58476d;
const K_LO_0 = K_LO & 0xffff;
const K_LO_1 = K_LO >>> 16;

/**
 * DuckDB's block checksum (`src/common/checksum.cpp`) of a length that is a multiple of
 * 8: 5381 XOR each little-endian 64-bit word times 0xbf58476d1ce4e5b9 (mod 2^64). In
 * 32-bit halves: BigInt arithmetic is about three times slower.
 */
export function checksum(bytes: Buffer): bigint {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  let lowXor = Number(EMPTY_CHECKSUM);
  let highXor = 0;
  for (let i = 0; i < words.length; i += 2) {
    const lo = words[i] as number;
    const hi = words[i + 1] as number;
    // lo * K_LO as a 64-bit product, from 16-bit halves (every partial sum exact in a double).
    const lo0 = lo & 0xffff;
    const lo1 = lo >>> 16;
    const middle = lo1 * K_LO_0 + lo0 * K_LO_1;
    const low = lo0 * K_LO_0 + (middle % 65536) * 65536;
    const high = lo1 * K_LO_1 + Math.floor(middle / 65536) + Math.floor(low / 4294967296);
    lowXor ^= low >>> 0;
    highXor ^= (high + Math.imul(lo, K_HI) + Math.imul(hi, K_LO)) >>> 0;
  }
  return (BigInt(highXor >>> 0) << 32n) | BigInt(lowXor >>> 0);
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
