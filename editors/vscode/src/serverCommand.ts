import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';

/** How the lspilot server gets started, and which setting said so. */
export interface ServerCommand {
  command: string;
  args: string[];
  /** Where the command came from, for error messages. */
  source: 'lspilot.serverCommand' | 'lspilot.pythonPath' | 'PATH' | 'default';
}

function expand(value: string): string {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '';
  let out = value
    .replace(/\$\{workspaceFolder\}/g, folder)
    .replace(/\$\{userHome\}/g, os.homedir());
  if (out === '~' || out.startsWith('~/')) {
    out = path.join(os.homedir(), out.slice(1));
  }
  return out;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, process.platform === 'win32' ? fs.constants.F_OK : fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The absolute path of `name` on the PATH, or undefined. */
export function findOnPath(name: string): string | undefined {
  const exts = process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) {
      continue;
    }
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

/**
 * Resolves the command line from the settings: serverCommand, pythonPath, `lspilot` on PATH,
 * `python3 -m lspilot`. Both settings are read from the user's own settings only (`globalValue`:
 * the user's settings, with a remote window's Remote settings over them), never a workspace's: they
 * run a program. That is enforced here, not by a `machine` scope: in a remote window (code-server is
 * always one) VS Code drops a machine-scoped value from the user's settings as soon as it knows the
 * setting's scope, so whether the extension saw it at startup was a race (settings.ts, MACHINE_KEYS).
 */
export function resolveServerCommand(config: vscode.WorkspaceConfiguration): ServerCommand {
  const raw = config.inspect<unknown>('serverCommand')?.globalValue;
  const serverCommand = (Array.isArray(raw) ? raw : []).filter((part): part is string => typeof part === 'string');
  if (serverCommand.length > 0 && serverCommand[0].trim() !== '') {
    return { command: expand(serverCommand[0]), args: serverCommand.slice(1).map(expand), source: 'lspilot.serverCommand' };
  }
  const rawPython = config.inspect<unknown>('pythonPath')?.globalValue;
  const pythonPath = (typeof rawPython === 'string' ? rawPython : '').trim();
  if (pythonPath !== '') {
    return { command: expand(pythonPath), args: ['-m', 'lspilot'], source: 'lspilot.pythonPath' };
  }
  const onPath = findOnPath('lspilot');
  if (onPath !== undefined) {
    return { command: onPath, args: [], source: 'PATH' };
  }
  return { command: process.platform === 'win32' ? 'python' : 'python3', args: ['-m', 'lspilot'], source: 'default' };
}

/** Why `cmd` cannot run at all (missing program), or undefined when it looks runnable. */
export function checkRunnable(cmd: ServerCommand): string | undefined {
  const { command } = cmd;
  if (command.includes('/') || command.includes('\\')) {
    if (!fs.existsSync(command)) {
      return 'the program does not exist';
    }
    if (!isExecutable(command)) {
      return 'the program is not an executable file';
    }
    return undefined;
  }
  if (findOnPath(command) === undefined) {
    return `${command} is not on the PATH`;
  }
  return undefined;
}

export function describe(cmd: ServerCommand): string {
  return [cmd.command, ...cmd.args].map((part) => (/\s/.test(part) ? JSON.stringify(part) : part)).join(' ');
}

/**
 * The one-line fix shown with every start failure. lspilot is not on PyPI: it installs from a
 * checkout (or a wheel built from one).
 */
export const START_FIX =
  'Install the server from a checkout of lspilot: `pipx install /path/to/lspilot` (or `uv tool install /path/to/lspilot`), ' +
  'or run `./dev/demo` there and use `/path/to/lspilot/.venv/bin/lspilot`; then set `lspilot.serverCommand` to that `lspilot` program ' +
  '(e.g. ["/path/to/lspilot/.venv/bin/lspilot"]) or `lspilot.pythonPath` to the Python that has it.';

/** Hosts that never go through a proxy: a local model or llama.cpp on this machine. */
const LOCAL_HOSTS = ['127.0.0.1', 'localhost', '::1'];

/**
 * The server's environment: VS Code's, plus `http.proxy` as HTTPS_PROXY/HTTP_PROXY (which httpx
 * honours) when the environment names no proxy itself, with NO_PROXY covering this machine so a
 * local model is never proxied. `http.proxyStrictSSL` has no counterpart and is left alone.
 */
export function serverEnvironment(base: NodeJS.ProcessEnv, httpProxy: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  const proxy = (httpProxy ?? '').trim();
  const has = (name: string): boolean => Boolean(base[name] || base[name.toLowerCase()]);
  if (proxy === '' || has('HTTPS_PROXY') || has('ALL_PROXY')) {
    return env;
  }
  env.HTTPS_PROXY = proxy;
  if (!has('HTTP_PROXY')) {
    env.HTTP_PROXY = proxy;
  }
  const noProxy = (base.NO_PROXY ?? base.no_proxy ?? '')
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  for (const host of LOCAL_HOSTS) {
    if (!noProxy.includes(host)) {
      noProxy.push(host);
    }
  }
  env.NO_PROXY = noProxy.join(',');
  if (base.no_proxy !== undefined) {
    env.no_proxy = env.NO_PROXY;
  }
  return env;
}
