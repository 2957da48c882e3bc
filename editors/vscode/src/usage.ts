// Usage and cost in words. No vscode import: tests/editors/test_vscode.py runs this module in plain Node.
import type { McpServerStatus, ServerStatus, Usage } from './protocol';

/** Dollars with enough digits to show a fraction of a cent (as the server's `format_cost`). */
export function formatCost(cost: number): string {
  if (!Number.isFinite(cost) || cost < 0) {
    return '$?';
  }
  if (cost === 0) {
    return '$0';
  }
  if (cost >= 0.01) {
    return `$${cost.toFixed(2)}`;
  }
  const digits = Math.min(20, Math.max(4, 1 - Math.floor(Math.log10(cost)) + 1));
  return `$${cost.toFixed(digits).replace(/0+$/, '')}`;
}

/**
 * Dollars to four significant digits (`$0.0041`, `$0.00334`, `$1.235`), `<$0.0001` below a hundredth
 * of a cent: the format the chat view shows a turn's cost in (issue 28's one format; the server's
 * `format_cost`, which the action notifications and the status item use, still gives more digits).
 */
export function formatCostShort(cost: number): string {
  if (!Number.isFinite(cost) || cost < 0) {
    return '$?';
  }
  if (cost === 0) {
    return '$0';
  }
  if (cost < 0.0001) {
    return '<$0.0001';
  }
  let text = String(Number(cost.toPrecision(4)));
  if (cost >= 0.01 && /\.\d$/.test(text)) {
    text += '0'; // $0.10, not $0.1
  }
  return `$${text}`;
}

const count = (n: number): string => Math.round(n).toLocaleString('en-US');
const plural = (n: number, word: string): string => `${count(n)} ${word}${n === 1 ? '' : 's'}`;

/** `1,234 tokens in, 321 out, $0.0005` (`~` before estimated counts); undefined without usage. */
export function describeUsage(usage: Usage | null | undefined, cost: (dollars: number) => string = formatCost): string | undefined {
  if (usage === null || usage === undefined || typeof usage.promptTokens !== 'number') {
    return undefined;
  }
  const about = usage.estimated === true ? '~' : '';
  const words = `${about}${count(usage.promptTokens)} tokens in, ${about}${count(usage.completionTokens ?? 0)} out`;
  return typeof usage.cost === 'number' ? `${words}, ${cost(usage.cost)}` : words;
}

/** The session's figure for the status bar: its cost, or its tokens when no price is known. */
export function sessionFigure(session: ServerStatus['session']): string {
  if (session === undefined) {
    return '';
  }
  if (typeof session.cost === 'number') {
    return formatCost(session.cost);
  }
  const tokens = (session.promptTokens ?? 0) + (session.completionTokens ?? 0);
  return tokens > 0 ? `${count(tokens)} tokens` : '';
}

/** `running, 2 tools`, `stopped (starts with the first agent turn)`, `failed: <why>`: one MCP server's state. */
export function describeMcpServer(server: McpServerStatus): string {
  const tools = typeof server.tools === 'number' ? plural(server.tools, 'tool') : undefined;
  switch (server.state) {
    case 'running':
      return tools !== undefined ? `running, ${tools}` : 'running';
    case 'stopped':
      return 'stopped (starts with the first agent turn that needs tools)';
    case 'failed':
    case 'refused': {
      const why = (server.error ?? '').trim().split('\n')[0];
      return why !== '' ? `${server.state}: ${why}` : server.state;
    }
    default:
      return server.state;
  }
}

/** The lines of **lspilot: Show status**. */
export function describeStatus(status: ServerStatus, completions: string): string[] {
  const session = status.session ?? {};
  const running = status.running ?? [];
  const cost =
    typeof session.cost === 'number' ? formatCost(session.cost) : 'cost unknown (no price for the model; see lspilot.prices)';
  return [
    `Server: lspilot ${status.version ?? '?'}`,
    `Model: ${status.model ?? '?'}` +
      (status.completionModel !== undefined && status.completionModel !== status.model ? ` (completions: ${status.completionModel})` : ''),
    `Endpoint: ${status.baseUrl ?? '?'}`,
    `API key: ${status.apiKeySet === true ? 'set' : 'not set'}`,
    `Completions: ${completions}`,
    `Running: ${running.length === 0 ? 'nothing' : running.map((r) => r.action ?? String(r.token)).join(', ')}`,
    `This session: ${plural(session.requests ?? 0, 'request')}, ${count(session.promptTokens ?? 0)} tokens in, ` +
      `${count(session.completionTokens ?? 0)} out, ${cost}`,
    ...(status.mcpServers ?? []).map((server) => `MCP server ${server.name}: ${describeMcpServer(server)}`),
  ];
}
