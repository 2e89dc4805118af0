// App instances in processes of their own, for the specs that SIGKILL or SIGSTOP an instance: a fixture compiled with
// tsc (its tsconfig writes under node_modules/.cache), started with node, talking in lines on stdin and stdout.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The repository's root, with a trailing slash. */
export const root = fileURLToPath(new URL('../..', import.meta.url));

/** Compiles the fixture `tsconfig` names into `out` (its outDir) and marks the output as ES modules. */
export function compileFixture(tsconfig: string, out: string): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', tsconfig], { cwd: root, stdio: 'inherit' });
  writeFileSync(`${out}/package.json`, '{ "type": "module" }\n');
}

/**
 * One instance: `ready` resolves when it prints "ready" and rejects if it exits first; every other line goes to
 * `onLine`, which a subclass overrides.
 */
export class AppProcess {
  readonly ready: Promise<void>;
  readonly child: ChildProcess;

  constructor(
    readonly name: string,
    script: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [script], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let buffer = '';
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code, signal) => reject(new Error(`${name} exited (${code ?? signal})`)));
      this.child.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        for (const line of lines) {
          if (line === 'ready') resolve();
          else this.onLine(line);
        }
      });
    });
    this.ready.catch(() => undefined);
  }

  protected onLine(_line: string): void {}

  /** Writes a command line to the instance's stdin. */
  send(command: string): void {
    this.child.stdin!.write(`${command}\n`);
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** SIGKILLs the instance and waits for it to exit (nothing if it has exited already). */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}
