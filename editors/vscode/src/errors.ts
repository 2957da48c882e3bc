// No vscode import.

/** The readable message of anything thrown. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/** Error types (`error.type` of a result) that a key in secret storage fixes. */
export const KEY_ERROR_TYPES: readonly string[] = ['no_api_key', 'authentication'];

/**
 * Whether a message of the server says the key is missing or was refused (`no_api_key`,
 * `authentication`): it gets a "Set API key…" button. The server's words, older and newer: "No API
 * key is set", "<host> refused the API key (401)", and the hint naming "lspilot: Set API key".
 */
export function isKeyProblem(message: string): boolean {
  return /\bno API key\b|\brefused the API key\b|\bSet API key\b/i.test(message);
}
