import * as vscode from 'vscode';

/** Settings of the `lspilot` section that belong to the server (the rest is the extension's own). */
export const SERVER_KEYS = [
  'baseUrl',
  'apiKey',
  'apiKeyCommand',
  'model',
  'temperature',
  'topP',
  'maxTokens',
  'stop',
  'maxRetries',
  'retryBaseSeconds',
  'connectTimeout',
  'idleTimeout',
  'maxResponseChars',
  'verifyTls',
  'contextLines',
  'contextBudgetChars',
  'maxConcurrentRequests',
  'liveRefactor',
  'confirmEdits',
  'explainShow',
  'actions',
] as const;

export type Settings = Record<string, unknown>;

/**
 * The server settings the user has actually set (user, workspace, folder or language scope), never
 * the schema's defaults. The server ranks `workspace/configuration` above the environment, so sending
 * defaults would hide `LSPILOT_BASE_URL`, `LSPILOT_MODEL` and the like. A value of `null` or an empty
 * string counts as "not set".
 */
export function explicitSettings(scope?: vscode.Uri, apiKeyFromSecrets?: string): Settings {
  const config = vscode.workspace.getConfiguration('lspilot', scope);
  const out: Settings = {};
  for (const key of SERVER_KEYS) {
    const info = config.inspect(key);
    if (info === undefined) {
      continue;
    }
    const candidates = [
      info.workspaceFolderLanguageValue,
      info.workspaceLanguageValue,
      info.globalLanguageValue,
      info.workspaceFolderValue,
      info.workspaceValue,
      info.globalValue,
    ];
    const value = candidates.find((v) => v !== undefined && v !== null && v !== '');
    if (value !== undefined) {
      out[key] = value;
    }
  }
  if (out.apiKey === undefined && apiKeyFromSecrets) {
    out.apiKey = apiKeyFromSecrets;
  }
  return out;
}
