/**
 * Every command answers `--help` (and `-h`) on stdout with exit code 0: its flags and an
 * example. The children run side by side; the flag check runs in process.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args]);

const COMMANDS = [
  'start',
  'simulate',
  'query',
  'decode',
  'redecode',
  'devices',
  'daily',
  'provision',
  'deprovision',
  'cost',
  'users',
] as const;

describe.concurrent('iot-pipeline <command> --help', () => {
  it.each(COMMANDS)('%s --help prints its usage and an example on stdout, exit code 0', async (name) => {
    const { stdout, stderr } = await cli(name, '--help');
    expect(stdout).toMatch(new RegExp(`^Usage: iot-pipeline ${name}\\b`));
    expect(stdout).toMatch(/\nExamples?:\n {2}iot-pipeline /);
    expect(stderr).toBe('');
  });

  it('answers -h as --help, after other flags too', async () => {
    const { stdout } = await cli('start', '--data', '/nonexistent', '-h');
    expect(stdout).toMatch(/^Usage: iot-pipeline start/);
    expect(stdout).toContain('--mqtt-port');
  });

  it('lists the commands for --help and for no command (exit code 2), and a command for help <command>', async () => {
    const { stdout } = await cli('--help');
    for (const name of COMMANDS) expect(stdout).toMatch(new RegExp(`^ {2}${name} `, 'm'));
    await expect(cli()).rejects.toMatchObject({ code: 2, stdout });
    expect((await cli('help', 'daily')).stdout).toMatch(/^Usage: iot-pipeline daily/);
  });

  it.each(COMMANDS)('%s --help names every flag the command takes', async (name) => {
    const command = (await import(`../../cli/commands/${name}.ts`)) as {
      options: Record<string, unknown>;
      usage: string;
    };
    for (const flag of Object.keys(command.options)) expect(command.usage).toContain(`--${flag}`);
  });
});
