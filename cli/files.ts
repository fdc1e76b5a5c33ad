/** Files the user names with a flag (a codec, a price list): unreadable is a usage mistake that names the flag. */
import { readFileSync } from 'node:fs';
import { UsageError } from './args.ts';

/** The text of the file `flag` names, else a UsageError: `--codec x.js: ENOENT: no such file ...`. */
export function readFlagFile(flag: string, file: string | URL): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`${flag} ${String(file)}: ${(error as Error).message}`);
  }
}
