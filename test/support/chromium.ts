/**
 * Headless Chromium for the console's browser tests and benchmark: Debian's `chromium`
 * from apt (`.ci/run` installs it), driven by playwright-core; no browser is downloaded.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

/** The chromium binary on PATH, or undefined. */
export function chromiumPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    for (const name of ['chromium', 'chromium-browser']) {
      const path = join(dir, name);
      if (dir && existsSync(path)) return path;
    }
  }
  return undefined;
}

export function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
