import * as vscode from 'vscode';

/**
 * Settings of the `lspilot` section that are this extension's own; every other `lspilot.*`
 * setting in package.json belongs to the server and is passed on (tests/unit/test_settings_lists.py
 * checks that those are exactly the server's keys).
 */
export const EXTENSION_KEYS: readonly string[] = ['serverCommand', 'pythonPath', 'trace.server'];

/**
 * Settings that run a program: only the user's own settings count (`globalValue`), never a
 * workspace's. Their scope is `window`, not `machine`: VS Code ignores a machine-scoped value in the
 * user's settings in a remote window (code-server, Remote - SSH), and at startup only sometimes.
 */
export const MACHINE_KEYS: readonly string[] = ['serverCommand', 'pythonPath', 'apiKeyCommand'];

/**
 * Settings a workspace may not set until it is trusted (package.json
 * `capabilities.untrustedWorkspaces.restrictedConfigurations`): where the key goes, what runs, and
 * what spending is counted and capped.
 */
export const RESTRICTED_KEYS: readonly string[] = [
  'serverCommand',
  'pythonPath',
  'apiKeyCommand',
  'baseUrl',
  'verifyTls',
  'localModel',
  'mcpServers',
  // what spending is counted and capped: an untrusted workspace could lift a limit the user set,
  // or pick the dearest model the key of the user can buy
  'prices',
  'maxSessionCost',
  'model',
  'completionModel',
  // programs a workspace would have run: the command of the tests, and running it unasked
  'runTests',
  'testCommand',
];

let serverKeys: readonly string[] = [];

/** Takes the server's keys from the extension's manifest (`contributes.configuration`). */
export function loadServerKeys(packageJSON: unknown): void {
  const properties = (packageJSON as { contributes?: { configuration?: { properties?: Record<string, unknown> } } })
    ?.contributes?.configuration?.properties ?? {};
  serverKeys = Object.keys(properties)
    .filter((name) => name.startsWith('lspilot.'))
    .map((name) => name.slice('lspilot.'.length))
    .filter((key) => !EXTENSION_KEYS.includes(key));
}

export function getServerKeys(): readonly string[] {
  return serverKeys;
}

export type Settings = Record<string, unknown>;

type Inspected = NonNullable<ReturnType<vscode.WorkspaceConfiguration['inspect']>>;

/**
 * The value the user set for `key`, from the scopes that may set it: a program-running key only
 * from the user's settings, a restricted key from a workspace only once it is trusted.
 */
export function explicitValue(info: Inspected, key: string): unknown {
  const userOnly = MACHINE_KEYS.includes(key) || (RESTRICTED_KEYS.includes(key) && !vscode.workspace.isTrusted);
  const candidates = userOnly
    ? [info.globalValue]
    : [
        info.workspaceFolderLanguageValue,
        info.workspaceLanguageValue,
        info.globalLanguageValue,
        info.workspaceFolderValue,
        info.workspaceValue,
        info.globalValue,
      ];
  return candidates.find((v) => v !== undefined && v !== null && v !== '');
}

/**
 * The server settings the user has actually set (user, workspace, folder or language scope), never
 * the schema's defaults. The server ranks `workspace/configuration` above the environment, so sending
 * defaults would hide `LSPILOT_BASE_URL`, `LSPILOT_MODEL` and the like. A value of `null` or an empty
 * string counts as "not set". The key from secret storage is not added here (see extension.ts: it is
 * bound to the host it was stored for).
 */
export function explicitSettings(scope?: vscode.Uri): Settings {
  const config = vscode.workspace.getConfiguration('lspilot', scope);
  const out: Settings = {};
  for (const key of serverKeys) {
    const info = config.inspect(key);
    if (info === undefined) {
      continue;
    }
    const value = explicitValue(info, key);
    if (value !== undefined) {
      out[key] = value;
    }
  }
  if (!vscode.workspace.isTrusted) {
    // Write tests never runs model-written code in a workspace you have not trusted, whatever
    // your own settings say; trusting it pushes the settings again (extension.ts).
    out.runTests = 'never';
  }
  return out;
}

export const DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/** The base URL the server will use for these settings: the setting, then the environment, then the default. */
export function effectiveBaseUrl(settings: Settings, env: NodeJS.ProcessEnv = process.env): string {
  const set = settings.baseUrl;
  if (typeof set === 'string' && set.trim() !== '') {
    return set.trim();
  }
  return env.LSPILOT_BASE_URL || env.OPENAI_BASE_URL || DEFAULT_BASE_URL;
}

/** `host[:port]` of a base URL, lower case; undefined for `local` or something that is not a URL. */
export function hostOf(baseUrl: string): string | undefined {
  if (baseUrl === 'local') {
    return undefined;
  }
  try {
    const url = new URL(baseUrl);
    return url.host === '' ? undefined : url.host.toLowerCase();
  } catch {
    return undefined;
  }
}
