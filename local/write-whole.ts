/**
 * Files the local runtime and the CLI rewrite (keys, device credentials, the local keys'
 * `export` lines): written whole or not at all, readable by their owner only. The text
 * goes to a fresh temporary file beside the target (mode 0600), is flushed to disk, and
 * the temporary file is renamed over the target, so a reader never sees half a file.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export function writeWhole(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temporary, file);
  } catch (error) {
    try {
      closeSync(fd);
    } catch {}
    try {
      unlinkSync(temporary);
    } catch {}
    throw error;
  }
}
