// Usage and cost in words. No vscode import: tests/editors/test_vscode.py runs this module in plain Node.
import type { McpServerStatus, ServerStatus, SessionTotals, Usage, UsageGroup } from './protocol';

/**
 * Dollars in issue 28's one cost format, as the server's `format_cost` and the Neovim plugin write
 * them: `$0` for nothing, `<$0.0001` below a hundredth of a cent, else four significant digits but
 * never more than four decimals (`$0.0041`, `$0.0123`, `$0.5000`, `$1.235`, `$12.35`, `$1235`).
 * An unknown cost is the caller's to word ("cost unknown").
 */
export function formatCost(cost: number): string {
  if (!Number.isFinite(cost) || cost < 0) {
    return '$?';
  }
  if (cost === 0) {
    return '$0';
  }
  if (cost < 0.0001) {
    return '<$0.0001';
  }
  const decimals = Math.min(4, Math.max(0, 3 - Math.floor(Math.log10(cost))));
  return `$${cost.toFixed(decimals)}`;
}

/** The chat view's name for the one format (kept for its callers). */
export const formatCostShort = formatCost;

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

/** What a host other than the bundled model needs: a key (the server refuses to ask without one). */
export function needsKey(status: ServerStatus | undefined): boolean {
  return status !== undefined && status.apiKeySet === false && status.baseUrl !== undefined && status.baseUrl !== 'local';
}

/** `1 request, 11 tokens in, 2 out, $0.0001`, `no requests yet`, or `…, cost unknown (…)`. */
export function describeTotals(totals: SessionTotals | undefined, unknownCost = 'cost unknown'): string {
  const requests = totals?.requests ?? 0;
  if (requests === 0) {
    return 'no requests yet';
  }
  const cost = typeof totals?.cost === 'number' ? formatCost(totals.cost) : unknownCost;
  return `${plural(requests, 'request')}, ${count(totals?.promptTokens ?? 0)} tokens in, ${count(totals?.completionTokens ?? 0)} out, ${cost}`;
}

/** The session's split, in the order users meet them; next edits only once they cost something. */
const GROUPS: { key: UsageGroup; label: string; always: boolean }[] = [
  { key: 'actions', label: 'Actions', always: true },
  { key: 'chat', label: 'Chat', always: true },
  { key: 'ghostText', label: 'Ghost text', always: true },
  { key: 'nextEdits', label: 'Next edits', always: false },
];

/** `Actions: 1 request, …`, `Chat: no requests yet`, …: the session's groups (none from an older server). */
export function describeGroups(session: ServerStatus['session']): string[] {
  const groups = session?.groups;
  if (groups === undefined || groups === null) {
    return [];
  }
  return GROUPS.filter((g) => g.always || (groups[g.key]?.requests ?? 0) > 0).map((g) => `  ${g.label}: ${describeTotals(groups[g.key])}`);
}

/** The lines of **lspilot: Show status** and of the status item's tooltip. */
export function describeStatus(status: ServerStatus, completions: string): string[] {
  const session = status.session ?? {};
  const running = status.running ?? [];
  return [
    `Server: lspilot ${status.version ?? '?'}`,
    `Model: ${status.model ?? '?'}` +
      (status.completionModel !== undefined && status.completionModel !== status.model ? ` (completions: ${status.completionModel})` : ''),
    `Endpoint: ${status.baseUrl ?? '?'}`,
    `API key: ${status.apiKeySet === true ? 'set' : needsKey(status) ? 'not set (needed: lspilot: Set API key)' : 'not set'}`,
    `Completions: ${completions}`,
    `Running: ${running.length === 0 ? 'nothing' : running.map((r) => r.action ?? String(r.token)).join(', ')}`,
    `This session: ${describeTotals(session, 'cost unknown (no price for the model; see lspilot.prices)')}`,
    ...describeGroups(session),
    ...(status.mcpServers ?? []).map((server) => `MCP server ${server.name}: ${describeMcpServer(server)}`),
  ];
}
