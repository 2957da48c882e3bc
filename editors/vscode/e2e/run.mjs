// Drives a running code-server in headless Chromium through the lspilot extension's scenario:
// Refactor from the command palette, Explain into the panel, cancel a slow action from the
// progress notification. Started by tests/editors/test_vscode.py, which owns code-server, the
// fake upstream and the checks on the upstream's side.
//
// Environment:
//   E2E_URL        code-server's base URL, e.g. http://127.0.0.1:8123
//   E2E_FOLDER     the workspace folder code-server was started on
//   E2E_FILE       the Python file to open, relative to E2E_FOLDER
//   E2E_ARTIFACTS  folder for screenshots and the step log
//   E2E_HOME       where playwright-core is installed (LSPILOT_VSCODE_E2E_HOME)
//   E2E_SCENARIO   "main" (default); "key": the API key in secret storage stays with its host;
//                  "untrusted": a workspace the user does not trust cannot pick host or programs;
//                  "usage": tokens and cost in the end notification, the status bar and Show status;
//                  "ghost": ghost text appears, Tab accepts it, Pause completions stops asking;
//                  "chat": the chat view: typed turns stream in, Apply/Insert/Copy on a code block,
//                  Stop, New conversation and Open conversation…, Ask lspilot about this;
//                  "nes": next edit suggestions shown, jumped to, accepted (one undo step), cleared by
//                  a newer edit, dismissed; the status menu's MCP servers
//                  "chatux": the chat view's code blocks (highlighted, a toolbar in their header, no
//                  Apply on a REPL transcript, Applied ✓ / Not applied), the explanation panel after
//                  a window reload
//                  "agent": the chat view's Agent switch, steps inline, approvals in the view and the
//                  notification, Show diff, Deny shown as refused, Stop during a command
//   E2E_EXPECT     JSON: { original, refactoredPrefix, refactoredSuffix, refactoredCode, oldCode,
//                  explainText, explainHtml, instruction, instructedCode, testFile, testCode,
//                  refactorLines: [first, count], explainLines, cancelLines, pairedText,
//                  leakUrl, serverProgram, lightBulbText } (main); { secretKey, explainLines, otherBaseUrl, otherHost,
//                  allowedBaseUrl, allowedHost } (key); { explainLines, model, usageWords, cost,
//                  sessionLine, apiKey } (usage); { model, ghostLine, pausedLine, typed, suggestion, accepted,
//                  pausedMarker, resumedText } (ghost); { applyLines, questionLines, question2, question3,
//                  answerText, answerHtml, leakUrl, applied, answer2Text, askLines, askQuestion,
//                  askCode, inserted, title } (chat); { fix, edited, readLink, editSummary, editDiffOld,
//                  editDiffNew, cost1, rename, refusedAnswer, run, sleepArgv, doneAnswer } (agent);
//                  { model, renamedLine, bodyLine, acceptedLine, hoverOld, hoverNew, stallMs, mcp } (nes);
//                  { applyLines, question, code, replLine, applied, appliedWhere, explainLines,
//                  explainText, explainHtml, model } (chatux)
//   E2E_CHROMIUM   browser binary (default /usr/bin/chromium)
//   E2E_TIMEOUT_S  overall budget in seconds (default 240)
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    throw new Error(`missing environment variable ${name}`);
  }
  return value;
};

const URL_BASE = env('E2E_URL');
const FOLDER = env('E2E_FOLDER');
const FILE = env('E2E_FILE');
const ARTIFACTS = env('E2E_ARTIFACTS');
const HOME = env('E2E_HOME');
const EXPECT = JSON.parse(env('E2E_EXPECT'));
const CHROMIUM = env('E2E_CHROMIUM', '/usr/bin/chromium');
const SCENARIO = env('E2E_SCENARIO', 'main');
const BUDGET_S = Number(env('E2E_TIMEOUT_S', '240'));

const require = createRequire(path.join(HOME, 'package.json'));
const { chromium } = require('playwright-core');

fs.mkdirSync(ARTIFACTS, { recursive: true });
const t0 = Date.now();
let page;
let browser;
let currentStep = 'start';

function log(message) {
  const line = `[e2e ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${message}`;
  console.log(line);
  fs.appendFileSync(path.join(ARTIFACTS, 'steps.log'), line + '\n');
}

async function screenshot(name) {
  if (page === undefined) {
    return;
  }
  try {
    const file = path.join(ARTIFACTS, `${name}.png`);
    await page.screenshot({ path: file, timeout: 10_000 });
    log(`screenshot ${file}`);
  } catch (error) {
    log(`screenshot failed: ${error}`);
  }
}

async function fail(error) {
  log(`FAILED in step "${currentStep}": ${error?.stack ?? error}`);
  await screenshot(`failure-${currentStep.replace(/[^a-z0-9]+/gi, '-')}`);
  try {
    if (page !== undefined) {
      fs.writeFileSync(path.join(ARTIFACTS, 'failure-page.html'), await page.content());
    }
  } catch {
    // best effort
  }
  await browser?.close().catch(() => undefined);
  process.exit(1);
}

const watchdog = setTimeout(() => {
  void fail(new Error(`the whole scenario took longer than ${BUDGET_S}s`));
}, BUDGET_S * 1000);

// E2E_KEEP_GOING=1: a failed step is logged and the scenario goes on (to see every failure of
// an old build at once); the run still fails at the end.
const KEEP_GOING = process.env.E2E_KEEP_GOING === '1';
const failedSteps = [];

async function step(name, fn) {
  currentStep = name;
  const started = Date.now();
  log(`step: ${name}`);
  try {
    const result = await fn();
    log(`ok: ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    return result;
  } catch (error) {
    if (!KEEP_GOING) {
      throw error;
    }
    log(`FAILED (going on): ${name}: ${error?.stack ?? error}`);
    await screenshot(`failure-${name.replace(/[^a-z0-9]+/gi, '-')}`);
    failedSteps.push(name);
    await page.keyboard.press('Escape').catch(() => undefined);
    return undefined;
  }
}

/** Polls `fn` until it returns a truthy value; throws `what` after `timeoutMs`. */
async function waitFor(what, fn, timeoutMs = 30_000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) {
        return last;
      }
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what} (last: ${String(last).slice(0, 300)})`);
    }
    await page.waitForTimeout(intervalMs);
  }
}

// --- the editor ------------------------------------------------------------------------------

const EDITOR = '.editor-instance .monaco-editor';

/** The text of the active editor, read from its rendered lines (the file is small: all are rendered). */
async function editorText() {
  return page.evaluate((selector) => {
    const editors = [...document.querySelectorAll(selector)].filter((e) => e.offsetParent !== null);
    const editor = editors.find((e) => e.querySelector('.view-lines')) ?? editors[0];
    if (!editor) {
      return null;
    }
    const lines = [...editor.querySelectorAll('.view-lines .view-line')]
      .map((line) => ({ top: parseFloat(line.style.top || '0'), text: line.textContent ?? '' }))
      .sort((a, b) => a.top - b.top)
      .map((line) => line.text.replace(/\u00a0/g, ' '));
    return lines.join('\n');
  }, `${EDITOR}[data-uri$="${FILE}"], ${EDITOR}`);
}

/** The text of the visible editor showing the file whose path ends with `name`, or null. */
async function editorTextOf(name) {
  return page.evaluate((suffix) => {
    const editor = [...document.querySelectorAll('.editor-instance .monaco-editor')].find(
      (e) => e.offsetParent !== null && (e.getAttribute('data-uri') ?? '').endsWith(suffix),
    );
    if (!editor) {
      return null;
    }
    return [...editor.querySelectorAll('.view-lines .view-line')]
      .map((line) => ({ top: parseFloat(line.style.top || '0'), text: line.textContent ?? '' }))
      .sort((a, b) => a.top - b.top)
      .map((line) => line.text.replace(/\u00a0/g, ' '))
      .join('\n');
  }, `/${name}`);
}

/** Text as the editor renders it: no trailing newline as a separate empty line difference. */
const norm = (text) => text.replace(/\s+$/, '');

async function focusEditor() {
  await page.locator(`${EDITOR} .view-lines`).first().click({ position: { x: 5, y: 5 } });
}

/** Selects `count` whole lines from 1-based line `first`. */
async function selectLines(first, count) {
  await focusEditor();
  await page.keyboard.press('Control+G');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(`:${first}`);
  await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
  await page.keyboard.press('Home');
  await page.keyboard.press('Home'); // twice: the first may stop at the indentation
  for (let i = 0; i < count; i++) {
    await page.keyboard.press('Shift+ArrowDown');
  }
}

/** Runs a command from the command palette by its exact title; `asks`: it opens an input box. */
async function runCommand(title, { asks = false } = {}) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(`>${title}`);
  const row = page.locator('.quick-input-list .monaco-list-row').filter({
    has: page.locator('.label-name', { hasText: new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }),
  });
  await row.first().waitFor({ state: 'visible', timeout: 15_000 });
  await row.first().click();
  if (!asks) {
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
  }
}

/** The explanation webview's state: {status, text, html}, or null while it isn't there. */
async function panelState() {
  for (const frame of page.frames()) {
    try {
      const state = await frame.evaluate(() => {
        const content = document.getElementById('content');
        const status = document.getElementById('status');
        if (!content || !status || !document.body.dataset.status) {
          return null;
        }
        return {
          status: document.body.dataset.status,
          session: document.body.dataset.session ?? '',
          title: document.getElementById('title')?.textContent ?? '',
          text: content.textContent ?? '',
          html: content.innerHTML,
          csp: document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? '',
          images: content.querySelectorAll('img').length,
          links: [...content.querySelectorAll('a')].map((a) => a.getAttribute('href') ?? ''),
        };
      });
      if (state) {
        return state;
      }
    } catch {
      // detached or cross-process frame that is going away
    }
  }
  return null;
}

async function notificationWithCancel() {
  const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'lspilot' });
  const cancel = toast.locator('a.monaco-button, .monaco-button', { hasText: /^Cancel$/ });
  return (await cancel.count()) > 0 ? cancel.first() : null;
}

async function statusBarText() {
  return page.locator('#workbench\\.parts\\.statusbar').innerText({ timeout: 5_000 });
}

/**
 * Records, from now on, every moment a notification both says an action is over ("Done: ...",
 * "Cancelled", "Failed: ...") and still offers Cancel; and every modal dialog that opens.
 * Read with `page.evaluate(() => window.__lspilotSeen)`.
 */
async function watchWorkbench() {
  await page.evaluate(() => {
    const seen = { doneWithCancel: [], dialogs: [] };
    window.__lspilotSeen = seen;
    const check = () => {
      for (const toast of document.querySelectorAll('.notifications-toasts .notification-toast')) {
        const text = (toast.querySelector('.notification-list-item-message')?.textContent ?? toast.textContent ?? '').trim();
        const cancel = [...toast.querySelectorAll('.monaco-button')].some((b) => (b.textContent ?? '').trim() === 'Cancel');
        if (cancel && /\b(Done: |Cancelled; |Failed: )/.test(text) && !seen.doneWithCancel.includes(text)) {
          seen.doneWithCancel.push(text);
        }
      }
      for (const dialog of document.querySelectorAll('.monaco-dialog-box')) {
        const text = (dialog.textContent ?? '').trim();
        if (!seen.dialogs.includes(text)) {
          seen.dialogs.push(text);
        }
      }
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}

async function seen() {
  return page.evaluate(() => window.__lspilotSeen);
}

/** Runs Explain on the lines and waits for its panel to end; returns the panel's last state. */
async function explainAndWait(lines, status) {
  const before = (await panelState())?.session;
  await focusEditor();
  await selectLines(...lines);
  await runCommand('lspilot: Explain');
  let last;
  return waitFor(
    `the explanation to end (${status})`,
    async () => {
      const state = await panelState();
      last = state ?? last;
      if (state === null || state.session === before) {
        return null;
      }
      if (state.status !== status && state.status !== 'waiting' && state.status !== 'streaming') {
        throw new Error(`it ended ${state.status}: ${state.text}`);
      }
      return state.status === status ? state : null;
    },
    60_000,
  );
}

/** The modal dialog whose text includes `text`, once it is visible. */
async function modal(text) {
  const dialog = page.locator('.monaco-dialog-box', { hasText: text });
  await dialog.first().waitFor({ state: 'visible', timeout: 30_000 });
  return dialog.first();
}

// --- the scenario ----------------------------------------------------------------------------

async function main() {
  browser = await step('launch chromium', () =>
    chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage',
      ],
    }),
  );
  const context = await browser.newContext({
    viewport: { width: 1600, height: 1000 },
    // the chat's Copy goes through VS Code's clipboard service, which is the browser's clipboard here
    permissions: SCENARIO === 'chat' ? ['clipboard-read', 'clipboard-write'] : [],
  });
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('console', (message) => {
    if (message.type() === 'error') {
      fs.appendFileSync(path.join(ARTIFACTS, 'browser-console.log'), `${message.text()}\n`);
    }
  });

  await step('open the workbench', async () => {
    await page.goto(`${URL_BASE}/?folder=${encodeURIComponent(FOLDER)}`, { timeout: 60_000 });
    await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 90_000 });
    // the explorer shows the folder once the workbench is restored
    await page.locator('.explorer-folders-view, .explorer-viewlet').first().waitFor({ timeout: 60_000 });
  });

  if (SCENARIO === 'untrusted') {
    await step('do not trust the workspace', async () => {
      const dialog = await modal('trust the authors');
      await dialog.getByRole('button', { name: /^No/ }).click();
      await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
    });
  }
  await openFile();
  await watchWorkbench();
  if (SCENARIO === 'key') {
    await keyScenario();
  } else if (SCENARIO === 'usage') {
    await usageScenario();
  } else if (SCENARIO === 'ghost') {
    await ghostScenario();
  } else if (SCENARIO === 'chat') {
    await chatScenario();
  } else if (SCENARIO === 'agent') {
    await agentScenario();
  } else if (SCENARIO === 'nes') {
    await nesScenario();
  } else if (SCENARIO === 'ux') {
    await uxScenario();
  } else if (SCENARIO === 'ux-agent') {
    await uxAgentScenario();
  } else if (SCENARIO === 'chatux') {
    await chatUxScenario();
  } else if (SCENARIO === 'untrusted') {
    await step('in restricted mode, Explain uses the user\'s endpoint and server', async () => {
      const state = await explainAndWait(EXPECT.explainLines, 'done');
      if (!state.text.includes(EXPECT.explainText)) {
        throw new Error(`unexpected explanation: ${JSON.stringify(state.text)}`);
      }
    });
  } else {
    await mainScenario();
  }
  clearTimeout(watchdog);
  await browser.close();
  if (failedSteps.length > 0) {
    log(`FAILED steps: ${failedSteps.join('; ')}`);
    process.exit(1);
  }
  log('PASS');
}

async function openFile() {
  await step(`open ${FILE}`, async () => {
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 15_000 });
    await input.fill(FILE);
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: FILE });
    await row.first().waitFor({ state: 'visible', timeout: 30_000 });
    await page.keyboard.press('Enter');
    await waitFor('the file in the editor', async () => norm((await editorText()) ?? '') === norm(EXPECT.original), 30_000);
  });
}

async function mainScenario() {
  await step('refactor from the command palette', async () => {
    await selectLines(...EXPECT.refactorLines);
    await runCommand('lspilot: Refactor');
    const text = await waitFor(
      'the refactored code in the editor',
      async () => {
        const t = await editorText();
        return t !== null && t.includes(EXPECT.refactoredCode) ? t : null;
      },
      60_000,
    );
    if (!text.startsWith(EXPECT.refactoredPrefix)) {
      throw new Error(`the lines above the selection changed:\n${text}`);
    }
    if (!norm(text).endsWith(norm(EXPECT.refactoredSuffix))) {
      throw new Error(`the lines below the selection changed:\n${text}`);
    }
    if (text.includes(EXPECT.oldCode)) {
      throw new Error(`the old code is still there:\n${text}`);
    }
    log(`editor after refactor:\n${text}`);
  });
  const afterRefactor = norm(await editorText());

  await step('explain into the panel, live', async () => {
    await selectLines(...EXPECT.explainLines);
    await runCommand('lspilot: Explain');
    const seen = new Set();
    let partial = 0;
    const final = await waitFor(
      'the finished explanation in the panel',
      async () => {
        const state = await panelState();
        if (state === null) {
          return null;
        }
        const key = `${state.status}:${state.text.length}`;
        if (!seen.has(key)) {
          seen.add(key);
          if (state.status === 'streaming' && state.text.length > 0 && !state.text.includes(EXPECT.explainText)) {
            partial += 1;
          }
        }
        return state.status === 'done' && state.text.includes(EXPECT.explainText) ? state : null;
      },
      60_000,
      50,
    );
    log(`panel "${final.title}": ${JSON.stringify(final.text)}; partial renders seen: ${partial}`);
    if (!final.html.includes(EXPECT.explainHtml)) {
      throw new Error(`the panel did not render the markdown: ${final.html}`);
    }
    if (partial < 1) {
      throw new Error(`the panel never showed a partial explanation (states: ${[...seen].join(', ')})`);
    }
    if (norm(await editorText()) !== afterRefactor) {
      throw new Error('Explain changed the file');
    }
    await screenshot('explain-panel');
  });

  let afterInstruction = afterRefactor;
  await step('refactor with an instruction from the input box', async () => {
    await focusEditor();
    await selectLines(...EXPECT.cancelLines);
    await runCommand('lspilot: Refactor with instruction…', { asks: true });
    // the same quick-input widget turns from the palette into the extension's input box
    const input = page.locator('.quick-input-widget input[placeholder*="dataclass"]');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.fill(EXPECT.instruction);
    await page.keyboard.press('Enter');
    const text = await waitFor(
      'the instructed refactor in the editor',
      async () => {
        const t = await editorText();
        return t !== null && t.includes(EXPECT.instructedCode) ? t : null;
      },
      60_000,
    );
    if (!text.startsWith(afterRefactor.slice(0, afterRefactor.indexOf('def area')))) {
      throw new Error(`the lines above the selection changed:\n${text}`);
    }
    afterInstruction = norm(text);
  });

  await step('cancel a slow refactor from the progress notification', async () => {
    // back to the file's editor group, which the panel took the focus from
    await focusEditor();
    await selectLines(...EXPECT.cancelLines);
    await runCommand('lspilot: Refactor');
    const cancel = await waitFor('a progress notification with Cancel', notificationWithCancel, 30_000);
    await screenshot('progress-notification');
    // let a few chunks stream first, so that there is something that must not be applied
    await page.waitForTimeout(1_000);
    await cancel.click();
    await waitFor('the status bar to say cancelled', async () => /cancelled/i.test(await statusBarText()), 20_000);
    await waitFor('the notification to go away', async () => (await notificationWithCancel()) === null, 20_000);
    await page.waitForTimeout(2_000); // nothing may arrive late
    const text = norm(await editorText());
    if (text !== afterInstruction) {
      throw new Error(`the cancelled refactor changed the file:\n${text}`);
    }
  });

  await step('the light bulb offers the server\'s actions', async () => {
    await focusEditor();
    await selectLines(...EXPECT.explainLines);
    await page.keyboard.press('Control+.');
    const menu = page.locator('.action-widget');
    for (const title of ['lspilot: Explain', 'lspilot: Refactor', 'lspilot: Write tests']) {
      await menu.getByText(title, { exact: true }).first().waitFor({ state: 'visible', timeout: 15_000 });
    }
    // run one from there: it goes through the client's middleware, under its own token too
    const before = (await panelState())?.session;
    // (by keyboard: the menu's rows do not take a synthetic click)
    const focused = menu.locator('.monaco-list-row.focused');
    for (let i = 0; i < 6 && !/lspilot: Explain/.test((await focused.textContent().catch(() => '')) ?? ''); i++) {
      await page.keyboard.press('ArrowDown');
    }
    if (!/lspilot: Explain/.test((await focused.textContent()) ?? '')) {
      throw new Error('could not move to lspilot: Explain in the light bulb menu');
    }
    await page.keyboard.press('Enter');
    await menu.waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => undefined);
    const state = await waitFor(
      'the light bulb\'s explanation in the panel',
      async () => {
        const s = await panelState();
        return s !== null && s.session !== before && s.status === 'done' ? s : null;
      },
      60_000,
    );
    if (!state.text.includes(EXPECT.lightBulbText)) {
      throw new Error(`the light bulb's explanation is not in the panel: ${JSON.stringify(state.text)}`);
    }
  });

  await step('the keybinding opens the action menu', async () => {
    await focusEditor();
    await page.keyboard.press('Control+Alt+.');
    const list = page.locator('.quick-input-widget .quick-input-list');
    await list.waitFor({ state: 'visible', timeout: 10_000 });
    for (const title of ['Explain', 'Refactor', 'Refactor with instruction…', 'Write tests', 'Cancel running actions']) {
      await list.locator('.label-name', { hasText: new RegExp(`(^|\\s)${title}$`) }).first().waitFor({ timeout: 10_000 });
    }
    await page.keyboard.press('Escape');
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 5_000 });
  });

  await step('save', async () => {
    await focusEditor();
    await page.keyboard.press('Control+S');
    await waitFor(
      'the tab to be saved',
      async () => (await page.locator('.tabs-container .tab.dirty').count()) === 0,
      15_000,
    );
  });

  await step('write tests into the test file', async () => {
    await focusEditor();
    await selectLines(...EXPECT.explainLines);
    await runCommand('lspilot: Write tests');
    const text = await waitFor(
      `the tests in ${EXPECT.testFile}`,
      async () => {
        const t = await editorTextOf(EXPECT.testFile);
        return t !== null && t.includes(EXPECT.testCode) ? t : null;
      },
      60_000,
    );
    log(`${EXPECT.testFile}:\n${text}`);
    await screenshot('tests-written');
    await waitFor('the progress notification to close', async () => (await notificationWithCancel()) === null, 20_000);
    await waitFor('the outcome in the status bar', async () => /Write tests: Done: /.test(await statusBarText()), 10_000);
  });

  await step('a finished action offers nothing to cancel', async () => {
    // every action so far has ended and its notification closed: none said it was over under Cancel
    const { doneWithCancel } = await seen();
    if (doneWithCancel.length > 0) {
      throw new Error(`a notification showed an ended action with a Cancel button: ${JSON.stringify(doneWithCancel)}`);
    }
  });

  await step('two explains on one file, the first failing before it streams, keep their own text', async () => {
    const before = (await panelState())?.session;
    await focusEditor();
    await selectLines(...EXPECT.explainLines);
    await runCommand('lspilot: Explain'); // the upstream fails this one after a while, with no text
    await focusEditor();
    await selectLines(...EXPECT.explainLines);
    await runCommand('lspilot: Explain'); // this one streams
    const all = [];
    const final = await waitFor(
      'the second explanation to finish',
      async () => {
        const state = await panelState();
        if (state === null || state.session === before) {
          return null;
        }
        const last = all[all.length - 1];
        if (last === undefined || last.session !== state.session || last.status !== state.status || last.text !== state.text) {
          all.push(state);
        }
        return state.status === 'done' ? state : null;
      },
      60_000,
      50,
    );
    log(`panel states: ${JSON.stringify(all.map((s) => `${s.session}:${s.status}:${s.text}`))}`);
    const states = all.filter((s) => s.session === final.session);
    if (!final.text.startsWith(EXPECT.pairedText)) {
      throw new Error(`the panel ended with another text: ${JSON.stringify(final.text)}`);
    }
    const partial = states.filter((s) => s.status === 'streaming' && s.text.trim() !== '');
    if (partial.length === 0) {
      throw new Error(`the second explanation never streamed into its panel: ${JSON.stringify(states)}`);
    }
    for (const state of states) {
      if (state.status === 'failed') {
        throw new Error(`the first run's failure ended the second run's panel: ${JSON.stringify(state)}`);
      }
      if (!final.text.startsWith(state.text.trim())) {
        throw new Error(`the panel showed text that is not the start of its answer: ${JSON.stringify(state.text)}`);
      }
    }
    await screenshot('paired-explain');

    // the answer's image is a link, and nothing remote may load
    if (final.images !== 0) {
      throw new Error(`the panel rendered an image: ${final.html}`);
    }
    if (!final.links.some((href) => href === EXPECT.leakUrl)) {
      throw new Error(`the image did not become a link to ${EXPECT.leakUrl}: ${final.html}`);
    }
    if (/https?:|\*|cspSource|vscode-cdn/.test(final.csp) || !/default-src 'none'/.test(final.csp)) {
      throw new Error(`the panel's CSP allows remote content: ${final.csp}`);
    }
    log(`csp: ${final.csp}`);
  });

  await step('a server that cannot start gets a message with the fix', async () => {
    // lspilot.serverCommand is the user's (machine-scoped) and code-server does not notice an
    // outside edit of the user settings file: take the program it names away, then restart.
    fs.unlinkSync(EXPECT.serverProgram);
    await runCommand('lspilot: Restart server');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'could not start' });
    await toast.first().waitFor({ state: 'visible', timeout: 30_000 });
    const message = await toast.first().innerText();
    for (const part of [
      path.basename(EXPECT.serverProgram),
      'does not exist',
      'pipx install /path/to/lspilot',
      'uv tool install /path/to/lspilot',
      'lspilot.serverCommand',
      'lspilot.pythonPath',
    ]) {
      if (!message.includes(part)) {
        throw new Error(`the start error lacks ${JSON.stringify(part)}: ${message}`);
      }
    }
    log(`start error: ${message.replace(/\s+/g, ' ')}`);
    if (/pip(x)? install lspilot\b/.test(message)) {
      throw new Error(`the start error suggests installing lspilot from PyPI, where it is not: ${message}`);
    }
    await screenshot('start-error');
  });
}

/** The key in secret storage goes to the host it was stored for; elsewhere only when allowed. */
async function keyScenario() {
  await step('store a key for the endpoint', async () => {
    await runCommand('lspilot: Set API key', { asks: true });
    const input = page.locator('.quick-input-widget input[type="password"]');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.fill(EXPECT.secretKey);
    await page.keyboard.press('Enter');
    await page.locator('.notifications-toasts .notification-toast', { hasText: 'API key saved' }).first().waitFor({ timeout: 15_000 });
  });

  await step('an action on that host sends the key', async () => {
    await explainAndWait(EXPECT.explainLines, 'done');
  });

  await step('a workspace pointing lspilot.baseUrl elsewhere: asked, refused, the key is not sent', async () => {
    fs.writeFileSync(path.join(FOLDER, '.vscode', 'settings.json'), JSON.stringify({ 'lspilot.baseUrl': EXPECT.otherBaseUrl }));
    const dialog = await modal(`Send your lspilot API key to ${EXPECT.otherHost}?`);
    await screenshot('key-question');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
    const state = await explainAndWait(EXPECT.explainLines, 'failed');
    log(`without the key: ${state.title}: ${JSON.stringify(state.text)}`);
  });

  await step('the answer is remembered: no second question after a restart', async () => {
    const before = (await seen()).dialogs.length;
    await runCommand('lspilot: Restart server');
    await waitFor('the restart', async () => /server restarted/.test(await statusBarText()), 30_000);
    await explainAndWait(EXPECT.explainLines, 'failed');
    const { dialogs } = await seen();
    if (dialogs.length !== before) {
      throw new Error(`asked again: ${JSON.stringify(dialogs.slice(before))}`);
    }
  });

  await step('another host, allowed: the key goes there', async () => {
    fs.writeFileSync(path.join(FOLDER, '.vscode', 'settings.json'), JSON.stringify({ 'lspilot.baseUrl': EXPECT.allowedBaseUrl }));
    const dialog = await modal(`Send your lspilot API key to ${EXPECT.allowedHost}?`);
    await dialog.getByRole('button', { name: 'Allow' }).click();
    await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
    await explainAndWait(EXPECT.explainLines, 'done');
  });
}

// --- usage, status and ghost text -------------------------------------------------------------

/** The lspilot status bar item (it shows the model), or null. */
function statusItem() {
  return page.locator('#workbench\\.parts\\.statusbar .statusbar-item', { hasText: EXPECT.model }).first();
}

async function statusItemText() {
  const item = statusItem();
  return (await item.count()) > 0 ? ((await item.innerText({ timeout: 5_000 })) ?? '').trim() : '';
}

/** Whether the status item shows the codicon `name` (spinner, pause sign). */
async function statusItemIcon(name) {
  const item = statusItem();
  return (await item.count()) > 0 && (await item.locator(`.codicon-${name}`).count()) > 0;
}

/** Clicks the status item and picks `label` in its menu; `opens`: the entry opens a quick pick of its own. */
async function statusMenu(label, { opens = false } = {}) {
  await statusItem().click();
  const list = page.locator('.quick-input-widget .quick-input-list');
  await list.waitFor({ state: 'visible', timeout: 10_000 });
  for (const entry of ['Show status', 'Cancel all', /(Pause|Resume) completions/, 'Set API key', 'Open log']) {
    await list.locator('.label-name', { hasText: entry }).first().waitFor({ timeout: 10_000 });
  }
  await list.locator('.monaco-list-row', { has: page.locator('.label-name', { hasText: label }) }).first().click();
  if (!opens) {
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
  }
}

/** The ghost text shown in the editor now ('' when none). */
async function ghostText() {
  return page.evaluate(() =>
    [...document.querySelectorAll('.editor-instance .monaco-editor .ghost-text-decoration, .editor-instance .monaco-editor .ghost-text-decoration-preview, .editor-instance .monaco-editor .ghost-text')]
      .map((e) => e.textContent ?? '')
      .join('')
      .replace(/\u00a0/g, ' '),
  );
}

/** Puts the cursor at the end of 1-based line `line`. */
async function cursorToEndOf(line) {
  await focusEditor();
  await page.keyboard.press('Control+G');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(`:${line}`);
  await page.keyboard.press('Enter');
  await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
  await page.keyboard.press('End');
}

async function usageScenario() {
  await step('the status bar item shows the model once the server is up', async () => {
    await waitFor('the lspilot status item', async () => (await statusItemText()).includes(EXPECT.model), 60_000);
    log(`status item before: ${JSON.stringify(await statusItemText())}`);
  });

  await step('an action ends with its tokens and cost in a notification', async () => {
    await explainAndWait(EXPECT.explainLines, 'done');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'Explain done' });
    await toast.first().waitFor({ state: 'visible', timeout: 20_000 });
    const text = (await toast.first().innerText()).replace(/\s+/g, ' ');
    log(`end notification: ${text}`);
    if (!text.includes(EXPECT.usageWords)) {
      throw new Error(`the end notification lacks ${JSON.stringify(EXPECT.usageWords)}: ${text}`);
    }
  });

  await step('the status bar item shows the session cost', async () => {
    const text = await waitFor(
      `the cost ${EXPECT.cost} in the status item`,
      async () => {
        const t = await statusItemText();
        return t.includes(EXPECT.cost) ? t : null;
      },
      20_000,
    );
    log(`status item after: ${JSON.stringify(text)}`);
    if (await statusItemIcon('loading')) {
      throw new Error('the status item still spins after the action ended');
    }
    await screenshot('status-cost');
  });

  await step('its menu: Show status tells the session, never the key', async () => {
    await statusMenu('Show status', { opens: true });
    // a quick pick (issue 28: not a modal)
    const dialog = page.locator('.quick-input-widget');
    const text = await waitFor('the status lines', async () => {
      const t = ((await dialog.innerText()) ?? '').replace(/\s+/g, ' ');
      return t.includes('This session:') ? t : null;
    }, 10_000);
    log(`status page: ${text}`);
    for (const part of [EXPECT.sessionLine, `Model: ${EXPECT.model}`, 'API key: set']) {
      if (!text.includes(part)) {
        throw new Error(`the status lacks ${JSON.stringify(part)}: ${text}`);
      }
    }
    if (text.includes(EXPECT.apiKey)) {
      throw new Error('the status shows the API key');
    }
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
  });

  await step('a slow action spins the status item; Cancel all from its menu stops it', async () => {
    await focusEditor();
    await selectLines(...EXPECT.explainLines);
    await runCommand('lspilot: Refactor');
    await waitFor('the spinner in the status item', () => statusItemIcon('loading'), 20_000);
    await waitFor('a progress notification with Cancel', notificationWithCancel, 30_000);
    await statusMenu('Cancel all');
    await waitFor('the cancelled end notification', async () =>
      (await page.locator('.notifications-toasts .notification-toast', { hasText: 'Refactor cancelled' }).count()) > 0, 20_000);
    await waitFor('the spinner to stop', async () => !(await statusItemIcon('loading')), 20_000);
    if (norm(await editorText()) !== norm(EXPECT.original)) {
      throw new Error('the cancelled refactor changed the file');
    }
  });
}

async function ghostScenario() {
  await step('the status bar item shows the model once the server is up', async () => {
    await waitFor('the lspilot status item', async () => (await statusItemText()).includes(EXPECT.model), 60_000);
  });
  const costBefore = await statusItemText();

  await step('ghost text appears as you type, and Tab accepts it', async () => {
    await cursorToEndOf(EXPECT.ghostLine);
    await page.keyboard.type(EXPECT.typed);
    const shown = await waitFor('the ghost text', async () => {
      const g = await ghostText();
      return g.includes(EXPECT.suggestion) ? g : null;
    }, 30_000);
    log(`ghost text: ${JSON.stringify(shown)}`);
    await screenshot('ghost-text');
    await page.keyboard.press('Tab');
    const text = await waitFor('the suggestion in the file', async () => {
      const t = await editorText();
      return t !== null && t.includes(EXPECT.accepted) && !(await ghostText()).includes(EXPECT.suggestion) ? t : null;
    }, 10_000);
    log(`after Tab:\n${text}`);
  });

  await step('completions count in the session cost (the status asks again after them)', async () => {
    const text = await waitFor('a cost in the status item', async () => {
      const t = await statusItemText();
      return /\$\d/.test(t) && t !== costBefore ? t : null;
    }, 20_000);
    log(`status item: ${costBefore} -> ${text}`);
  });

  await step('Pause completions from the status bar menu: typing asks nothing', async () => {
    await statusMenu('Pause completions');
    await waitFor('the pause sign in the status item', () => statusItemIcon('debug-pause'), 10_000);
    await focusEditor();
    await cursorToEndOf(EXPECT.pausedLine);
    await page.keyboard.type(EXPECT.pausedMarker);
    // and asked outright: an invoked request has no debounce, the server would ask the upstream at once
    await page.keyboard.press('Alt+Backslash');
    // the proof is on the upstream's side: no request holds this text without what comes after resuming
  });

  await step('Resume completions (command palette): ghost text again', async () => {
    if ((await ghostText()).includes(EXPECT.suggestion)) {
      throw new Error('ghost text showed while paused');
    }
    // from the command palette (opened from the editor, it gives the focus back with the cursor
    // where it was), so the first change after resuming holds all of the resumed text (one edit)
    await runCommand('lspilot: Resume completions');
    await waitFor('the pause sign to go', async () => !(await statusItemIcon('debug-pause')), 10_000);
    await page.keyboard.insertText(`\n    ${EXPECT.resumedText}`);
    await waitFor('the ghost text after resuming', async () => (await ghostText()).includes(EXPECT.suggestion), 30_000);
  });

  await step('Ctrl+Right accepts the next word of the suggestion', async () => {
    const firstWord = EXPECT.suggestion.split(' ')[0];
    const rest = EXPECT.suggestion.slice(firstWord.length).trim();
    await page.keyboard.press('Control+ArrowRight');
    const text = await waitFor('one word accepted', async () => {
      const t = await editorText();
      const g = await ghostText();
      return t !== null && t.includes(`${EXPECT.resumedText}${firstWord}`) && g.includes(rest) ? { t, g } : null;
    }, 10_000);
    log(`after Ctrl+Right: ghost ${JSON.stringify(text.g)}`);
    await page.keyboard.press('Escape');
    await waitFor('the ghost text to go', async () => (await ghostText()).trim() === '', 10_000);
  });

  await step('Alt+\\ asks for a suggestion now (an invoked request)', async () => {
    await page.keyboard.press('End');
    await page.keyboard.press('Alt+Backslash');
    const shown = await waitFor('ghost text on request', async () => {
      const g = (await ghostText()).trim();
      return g !== '' ? g : null;
    }, 30_000);
    log(`invoked ghost text: ${JSON.stringify(shown)}`);
    await page.keyboard.press('Escape');
    await waitFor('the ghost text to go', async () => (await ghostText()).trim() === '', 10_000);
  });

  await step('save', async () => {
    await page.keyboard.press('Control+S');
    await waitFor('the tab to be saved', async () => (await page.locator('.tabs-container .tab.dirty').count()) === 0, 15_000);
  });
}

// --- the chat view -----------------------------------------------------------------------------

/** The chat view's webview frame (its body is #lspilot-chat), or null while it isn't there. */
async function chatFrame() {
  for (const frame of page.frames()) {
    try {
      if (await frame.evaluate(() => document.body?.id === 'lspilot-chat')) {
        return frame;
      }
    } catch {
      // detached or cross-process frame that is going away
    }
  }
  return null;
}

/** The chat view as the user sees it: its turns, the input, Send/Stop, the context line, its CSP. */
async function chatState() {
  const frame = await chatFrame();
  if (frame === null) {
    return null;
  }
  return frame.evaluate(() => ({
    busy: document.body.dataset.busy,
    input: document.getElementById('input').value,
    sendShown: !document.getElementById('send').hidden,
    stopShown: !document.getElementById('stop').hidden,
    context: document.getElementById('context-label').textContent,
    csp: document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? '',
    images: document.querySelectorAll('#turns img').length,
    modeAgent: document.getElementById('mode-agent')?.getAttribute('aria-checked') ?? null,
    turns: [...document.querySelectorAll('#turns .turn')].map((t) => ({
      mode: t.dataset.mode,
      steps: [...t.querySelectorAll('.step')].map((s) => ({
        key: s.dataset.step,
        name: s.dataset.name,
        status: s.dataset.status,
        line: s.querySelector('.step-line')?.textContent ?? '',
        args: s.querySelector('.step-args')?.textContent ?? '',
        summary: s.querySelector('.step-summary')?.textContent ?? '',
        link: s.querySelector('.step-link')?.textContent ?? null,
        pending: s.querySelector('.approval')?.dataset.pending ?? null,
        question: s.querySelector('.approval .question')?.textContent ?? '',
        answer: s.querySelector('.approval-answer')?.textContent ?? '',
        buttons: [...s.querySelectorAll('button[data-step-act]')].map((b) => b.textContent),
      })),
      role: t.classList.contains('user') ? 'user' : 'assistant',
      status: t.dataset.status,
      text: t.querySelector('.body').textContent,
      html: t.querySelector('.body').innerHTML,
      note: t.querySelector('.note').textContent,
      // icon buttons: named by their aria-label
      buttons: [...t.querySelectorAll('button[data-act]')].map((b) => b.getAttribute('aria-label') ?? b.textContent),
      links: [...t.querySelectorAll('a')].map((a) => a.getAttribute('href') ?? ''),
    })),
  }));
}

/** Types `lines` into the chat's input as a user does (Shift+Enter between them) and sends with Enter. */
async function chatType(lines) {
  const frame = await waitFor('the chat view', chatFrame, 30_000);
  const input = frame.locator('#input');
  await input.click();
  for (let i = 0; i < lines.length; i++) {
    if (i > 0) {
      await input.press('Shift+Enter');
    }
    await input.pressSequentially(lines[i], { delay: 5 });
  }
  await input.press('Enter');
}

/** Waits for answer `index` to end `status`, recording every state seen on the way (polled every 50 ms). */
async function chatAnswer(index, status, seen = []) {
  return waitFor(
    `chat turn ${index} to end ${status}`,
    async () => {
      const state = await chatState();
      const turn = state?.turns[index];
      if (turn === undefined) {
        return null;
      }
      const last = seen[seen.length - 1];
      if (last === undefined || last.status !== turn.status || last.text !== turn.text) {
        seen.push(turn);
      }
      if (turn.status !== status && !['waiting', 'streaming'].includes(turn.status)) {
        throw new Error(`it ended ${turn.status}: ${turn.note} ${turn.text}`);
      }
      return turn.status === status && state.busy === 'false' ? state : null;
    },
    60_000,
    50,
  );
}

/** Clicks a button of the code block of turn `index`: apply, insert or copy. */
async function chatBlockButton(index, act) {
  const frame = await chatFrame();
  await frame.locator(`.turn[data-index="${index}"] button[data-act="${act}"]`).first().click();
}

async function chatScenario() {
  await step('the chat view opens from the activity bar, showing what a message is about', async () => {
    await selectLines(...EXPECT.applyLines);
    await page.locator('.part.activitybar [aria-label^="lspilot"]').first().click();
    const state = await waitFor(
      'the chat view with the selection as context',
      async () => {
        const s = await chatState();
        return s !== null && s.context === `with calc.py:${EXPECT.applyLines[0]}-${EXPECT.applyLines[0] + EXPECT.applyLines[1] - 1}` ? s : null;
      },
      60_000,
    );
    log(`chat view: context ${JSON.stringify(state.context)}, ${state.turns.length} turns`);
    if (state.turns.length !== 0 || !state.sendShown || state.stopShown) {
      throw new Error(`a fresh chat view is not empty with Send: ${JSON.stringify(state)}`);
    }
  });

  await step('a question typed into the view streams its answer in, as Markdown with nothing remote', async () => {
    await chatType(EXPECT.questionLines);
    const seen = [];
    const state = await chatAnswer(1, 'done', seen);
    const [you, answer] = state.turns;
    log(`answer states: ${JSON.stringify(seen.map((t) => `${t.status}:${t.text.length}`))}`);
    if (you.role !== 'user' || you.text !== EXPECT.questionLines.join('\n')) {
      throw new Error(`the message shown is not what was typed: ${JSON.stringify(you)}`);
    }
    if (state.input !== '') {
      throw new Error(`the input box kept the sent message: ${JSON.stringify(state.input)}`);
    }
    if (!answer.text.includes(EXPECT.answerText) || !answer.html.includes(EXPECT.answerHtml)) {
      throw new Error(`unexpected answer: ${answer.html}`);
    }
    const partial = seen.filter((t) => t.status === 'streaming' && t.text.trim() !== '' && !t.text.includes(EXPECT.answerText));
    if (partial.length < 1) {
      throw new Error(`the answer never showed while it streamed: ${JSON.stringify(seen)}`);
    }
    if (JSON.stringify(answer.buttons) !== JSON.stringify(['Apply to selection', 'Insert at cursor', 'Copy'])) {
      throw new Error(`the code block's buttons: ${JSON.stringify(answer.buttons)}`);
    }
    if (!/\d+ tokens in, \d+ out/.test(answer.note)) {
      throw new Error(`the answer's usage is not shown under it: ${JSON.stringify(answer.note)}`);
    }
    if (state.images !== 0 || !answer.links.includes(EXPECT.leakUrl)) {
      throw new Error(`the answer's image is not only a link: ${answer.html}`);
    }
    if (/https?:|\*|cspSource|vscode-cdn|vscode-resource/.test(state.csp) || !/default-src 'none'/.test(state.csp)) {
      throw new Error(`the chat view's CSP allows remote content: ${state.csp}`);
    }
    log(`csp: ${state.csp}; note: ${answer.note}`);
    await screenshot('chat-answer');
  });

  await step('Apply to selection puts the code block into the file', async () => {
    await chatBlockButton(1, 'apply');
    const text = await waitFor('the applied code in the editor', async () => {
      const t = await editorText();
      return t !== null && norm(t) === norm(EXPECT.applied) ? t : null;
    }, 30_000);
    log(`after Apply:\n${text}`);
  });

  await step('Copy puts the code on the clipboard', async () => {
    await page.evaluate(() => navigator.clipboard.writeText('(nothing copied)'));
    await chatBlockButton(1, 'copy');
    const copied = await waitFor('the code on the clipboard', async () => {
      const t = await page.evaluate(() => navigator.clipboard.readText());
      return t !== '(nothing copied)' ? t : null;
    }, 10_000);
    if (copied !== EXPECT.copied) {
      throw new Error(`copied ${JSON.stringify(copied)}`);
    }
  });

  await step('a second turn continues the conversation', async () => {
    await chatType([EXPECT.question2]);
    const state = await chatAnswer(3, 'done');
    if (state.turns.length !== 4 || !state.turns[3].text.includes(EXPECT.answer2Text)) {
      throw new Error(`unexpected turns: ${JSON.stringify(state.turns.map((t) => t.text))}`);
    }
  });

  await step('Stop ends a streaming answer', async () => {
    await chatType([EXPECT.question3]);
    await waitFor('the answer streaming, with Stop', async () => {
      const s = await chatState();
      return s?.turns[5]?.status === 'streaming' && s.turns[5].text.trim() !== '' && s.stopShown && !s.sendShown;
    }, 30_000);
    const frame = await chatFrame();
    await frame.locator('#stop').click();
    const state = await chatAnswer(5, 'cancelled');
    log(`stopped: ${JSON.stringify(state.turns[5].note)}`);
    if (!state.sendShown || state.stopShown) {
      throw new Error('Send did not come back after Stop');
    }
  });

  await step('New conversation empties the view; Open conversation… shows the kept one again', async () => {
    await page.locator('.part.sidebar [aria-label^="New conversation"]').first().click();
    await waitFor('an empty chat view', async () => (await chatState())?.turns.length === 0, 10_000);
    await page.locator('.part.sidebar [aria-label^="Open conversation"]').first().click();
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: EXPECT.title });
    await row.first().waitFor({ state: 'visible', timeout: 15_000 });
    log(`kept: ${(await page.locator('.quick-input-list .monaco-list-row').allInnerTexts()).join(' | ').replace(/\s+/g, ' ')}`);
    await row.first().click();
    const state = await waitFor('the kept conversation in the view', async () => {
      const s = await chatState();
      return s?.turns.length === 4 ? s : null;
    }, 15_000);
    const texts = state.turns.map((t) => t.text);
    if (texts[0] !== EXPECT.questionLines.join('\n') || !texts[1].includes(EXPECT.answerText) ||
        texts[2] !== EXPECT.question2 || !texts[3].includes(EXPECT.answer2Text)) {
      throw new Error(`the reopened conversation shows other turns: ${JSON.stringify(texts)}`);
    }
    if (!state.turns[1].buttons.includes('Apply to selection')) {
      throw new Error(`a kept answer's code block cannot be applied: ${JSON.stringify(state.turns[1].buttons)}`);
    }
  });

  await step('Ask lspilot about this, from the editor\'s context menu, asks in the view', async () => {
    await selectLines(...EXPECT.askLines);
    await page.locator(`${EDITOR} .view-lines .view-line`).nth(EXPECT.askLines[0] - 1).click({ button: 'right' });
    // by keyboard (the menu's rows do not take a synthetic click): down to lspilot, into its submenu
    const focused = async () =>
      (await page.locator('.context-view .action-item.focused > .action-menu-item .action-label').allTextContents()).map((t) => t.trim());
    await page.locator('.context-view .monaco-menu').first().waitFor({ state: 'visible', timeout: 10_000 });
    for (let i = 0; i < 12 && !(await focused()).includes('lspilot'); i++) {
      await page.keyboard.press('ArrowDown');
    }
    await page.keyboard.press('ArrowRight');
    await waitFor('Ask lspilot about this focused in the submenu', async () => (await focused()).includes('Ask lspilot about this'), 5_000);
    await page.keyboard.press('Enter');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.fill(EXPECT.askQuestion);
    await page.keyboard.press('Enter');
    const state = await chatAnswer(5, 'done');
    if (state.turns[4].text !== EXPECT.askQuestion || !state.turns[4].note.includes('calc.py:')) {
      throw new Error(`the question is not shown with its context: ${JSON.stringify(state.turns[4])}`);
    }
    if (!state.turns[5].text.includes(EXPECT.askCode.trim())) {
      throw new Error(`unexpected answer: ${JSON.stringify(state.turns[5].text)}`);
    }
  });

  await step('Insert at cursor puts the block at the cursor; save', async () => {
    await chatBlockButton(5, 'insert');
    const text = await waitFor('the inserted code in the editor', async () => {
      const t = await editorText();
      return t !== null && norm(t) === norm(EXPECT.inserted) ? t : null;
    }, 30_000);
    log(`after Insert:\n${text}`);
    await focusEditor();
    await page.keyboard.press('Control+S');
    await waitFor('the tab to be saved', async () => (await page.locator('.tabs-container .tab.dirty').count()) === 0, 15_000);
  });
}

// --- the chat view's code blocks; the explanation panel across a window reload (issue 28) -----

/** The code blocks of chat turn `index`: language, buttons, REPL or not, highlighting and its colours. */
async function chatBlocks(index) {
  const frame = await chatFrame();
  return frame.evaluate((i) => {
    const turn = document.querySelector(`.turn[data-index="${i}"]`);
    return [...(turn?.querySelectorAll('.code-block') ?? [])].map((block) => {
      const code = block.querySelector('pre code');
      const keyword = code?.querySelector('.hljs-keyword');
      const header = block.querySelector('.block-header');
      const buttons = [...block.querySelectorAll('.block-header button[data-act]')];
      return {
        lang: block.querySelector('.block-lang')?.textContent ?? null,
        repl: block.dataset.repl === 'true',
        code: code?.textContent ?? '',
        spans: code?.querySelectorAll('span[class^="hljs-"]').length ?? 0,
        keyword: keyword?.textContent ?? null,
        keywordColor: keyword ? getComputedStyle(keyword).color : null,
        plainColor: code ? getComputedStyle(code).color : null,
        buttons: buttons.map((b) => ({
          act: b.dataset.act,
          label: b.getAttribute('aria-label'),
          title: b.title,
          icon: b.querySelector('svg') !== null,
          state: b.dataset.state ?? null,
          text: b.textContent.trim(),
        })),
        // the toolbar is one row in the header, above the code, not buttons wrapping over it
        headerHeight: header ? header.getBoundingClientRect().height : null,
        toolbarInHeader: buttons.every((b) => header.contains(b)),
        rows: new Set(buttons.map((b) => Math.round(b.getBoundingClientRect().top))).size,
      };
    });
  }, index);
}

/** The visible editor groups of the workbench, and how many are empty. */
async function editorGroups() {
  return page.evaluate(() => {
    const groups = [...document.querySelectorAll('.part.editor .editor-group-container')].filter((g) => g.offsetParent !== null);
    return { count: groups.length, empty: groups.filter((g) => g.classList.contains('empty')).length };
  });
}

async function chatUxScenario() {
  await step('a question about the selection gets an answer with a Python block and a REPL block', async () => {
    await selectLines(...EXPECT.applyLines);
    await page.locator('.part.activitybar [aria-label^="lspilot"]').first().click();
    await waitFor('the chat view with the selection as context', async () => (await chatState())?.context?.startsWith('with calc.py:'), 60_000);
    await chatType([EXPECT.question]);
    await chatAnswer(1, 'done');
  });

  await step('the Python block is highlighted in theme colours, with a one-row toolbar in its header', async () => {
    const [python] = await chatBlocks(1);
    log(`python block: ${JSON.stringify(python)}`);
    if (python.lang !== 'python' || python.code.trim() !== EXPECT.code.trim()) {
      throw new Error(`the block shows another language or code: ${JSON.stringify(python)}`);
    }
    if (python.spans < 3 || python.keyword !== 'def' || python.keywordColor === python.plainColor) {
      throw new Error(`the block is not highlighted: ${JSON.stringify(python)}`);
    }
    const acts = python.buttons.map((b) => [b.act, b.label, b.title, b.icon]);
    const want = [['apply', 'Apply to selection', 'Apply to selection', true], ['insert', 'Insert at cursor', 'Insert at cursor', true], ['copy', 'Copy', 'Copy', true]];
    if (JSON.stringify(acts) !== JSON.stringify(want) || !python.toolbarInHeader || python.rows !== 1 || python.headerHeight > 32) {
      throw new Error(`the toolbar: ${JSON.stringify(python)}`);
    }
    await screenshot('chat-highlighted-block-toolbar');
  });

  await step('the REPL transcript block offers Copy only', async () => {
    const [, repl] = await chatBlocks(1);
    log(`repl block: ${JSON.stringify(repl)}`);
    if (!repl.repl || !repl.code.includes(EXPECT.replLine) || JSON.stringify(repl.buttons.map((b) => b.act)) !== '["copy"]') {
      throw new Error(`the REPL block: ${JSON.stringify(repl)}`);
    }
    const frame = await chatFrame();
    await frame.locator('.turn[data-index="1"] .code-block[data-repl="true"]').scrollIntoViewIfNeeded();
    await screenshot('chat-repl-block-without-apply');
  });

  await step('Apply with no editor open says so on the button and in a message; nothing changes', async () => {
    await runCommand('View: Close All Editors');
    await waitFor('no editor open', async () => (await page.locator('.part.editor .tab').count()) === 0, 10_000);
    await chatBlockButton(1, 'apply');
    const button = await waitFor('Not applied on the Apply button', async () => {
      const b = (await chatBlocks(1))[0].buttons.find((x) => x.act === 'apply');
      return b.state === 'failed' ? b : null;
    }, 15_000);
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'Apply to selection: nothing changed' });
    await toast.first().waitFor({ state: 'visible', timeout: 10_000 });
    log(`failed apply: button ${JSON.stringify(button)}; message ${JSON.stringify(await toast.first().innerText())}`);
    if (button.text !== 'Not applied' || !/open the file/i.test(button.title)) {
      throw new Error(`the failed Apply: ${JSON.stringify(button)}`);
    }
    // the toast slides in: the screenshot once it is wholly on screen
    await waitFor('the message on screen', async () => {
      const box = await toast.first().boundingBox();
      return box !== null && box.y + box.height <= page.viewportSize().height;
    }, 5_000);
    await screenshot('chat-apply-not-applied');
    await page.keyboard.press('Escape');
  });

  await step('Apply to selection: Applied ✓ on the button, the file and lines in the status bar', async () => {
    await openFile();
    await selectLines(...EXPECT.applyLines);
    await chatBlockButton(1, 'apply');
    await waitFor('the applied code in the editor', async () => norm((await editorText()) ?? '') === norm(EXPECT.applied), 30_000);
    const button = await waitFor('Applied ✓ on the Apply button', async () => {
      const b = (await chatBlocks(1))[0].buttons.find((x) => x.act === 'apply');
      return b.state === 'ok' ? b : null;
    }, 15_000);
    const status = await waitFor('the status bar message', async () => {
      const text = await statusBarText();
      return text.includes(`Applied to ${EXPECT.appliedWhere}`) ? text : null;
    }, 10_000);
    log(`applied: button ${JSON.stringify(button)}; status bar ${JSON.stringify(status)}`);
    if (button.text !== 'Applied ✓' || button.title !== `Applied to ${EXPECT.appliedWhere}`) {
      throw new Error(`the Apply button after applying: ${JSON.stringify(button)}`);
    }
    await screenshot('chat-apply-confirmed');
    await focusEditor();
    await page.keyboard.press('Control+S');
    await waitFor('the tab to be saved', async () => (await page.locator('.tabs-container .tab.dirty').count()) === 0, 15_000);
  });

  await step('in a dark theme the block takes the dark theme\'s colours', async () => {
    const [light] = await chatBlocks(1);
    await runCommand('Preferences: Toggle between Light/Dark Themes');
    const dark = await waitFor('the block in the dark theme', async () => {
      const [block] = await chatBlocks(1);
      return block.plainColor !== light.plainColor && block.keywordColor !== light.keywordColor ? block : null;
    }, 15_000);
    log(`light: keyword ${light.keywordColor} on ${light.plainColor}; dark: keyword ${dark.keywordColor} on ${dark.plainColor}`);
    if (dark.keywordColor === dark.plainColor) {
      throw new Error(`the dark theme's block is not highlighted: ${JSON.stringify(dark)}`);
    }
    await screenshot('chat-highlighted-block-dark');
  });

  await step('after a window reload the explanation panel shows its explanation again, no empty group', async () => {
    const state = await explainAndWait(EXPECT.explainLines, 'done');
    if (!state.text.includes(EXPECT.explainText)) {
      throw new Error(`unexpected explanation: ${JSON.stringify(state.text)}`);
    }
    const before = await editorGroups();
    log(`before the reload: ${JSON.stringify(before)}`);
    await page.evaluate(() => { window.__lspilotBeforeReload = true; });
    await runCommand('Developer: Reload Window');
    await waitFor('the reloaded workbench', async () =>
      page.evaluate(() => window.__lspilotBeforeReload !== true && document.querySelector('.monaco-workbench') !== null), 90_000, 250);
    await page.locator('.part.editor .tab').first().waitFor({ state: 'visible', timeout: 60_000 });
    const restored = await waitFor('the explanation panel restored with its text', async () => {
      const s = await panelState();
      return s !== null && s.text.includes(EXPECT.explainText) ? s : null;
    }, 60_000, 250);
    const groups = await editorGroups();
    log(`after the reload: ${JSON.stringify(groups)}; panel ${JSON.stringify({ status: restored.status, title: restored.title, text: restored.text })}`);
    if (groups.empty !== 0 || groups.count !== before.count) {
      throw new Error(`after the reload the editor groups are ${JSON.stringify(groups)} (before: ${JSON.stringify(before)})`);
    }
    if (!restored.html.includes(EXPECT.explainHtml) || restored.status !== 'done') {
      throw new Error(`the restored panel: ${JSON.stringify(restored)}`);
    }
    // the reloaded window works: its server started (the status item names the model), no error
    const status = await waitFor('the server started again (the model in the status bar)', async () => {
      const text = await statusBarText();
      return text.includes(EXPECT.model) ? text : null;
    }, 30_000);
    const toasts = await page.locator('.notifications-toasts .notification-toast').allInnerTexts();
    log(`notifications after the reload: ${JSON.stringify(toasts)}; status bar: ${JSON.stringify(status)}`);
    if (toasts.some((t) => /lspilot|server/i.test(t))) {
      throw new Error(`after the reload: ${JSON.stringify(toasts)}`);
    }
    await screenshot('explain-panel-after-reload');
  });
}

// --- agent mode --------------------------------------------------------------------------------

/** The step named `name` of turn `index` (the last one of that name), or undefined. */
async function agentStep(index, name) {
  const state = await chatState();
  return state?.turns[index]?.steps.filter((s) => s.name === name).pop();
}

/** Waits for the step named `name` of turn `index` to satisfy `check`; returns it. */
async function waitStep(index, name, what, check, timeoutMs = 30_000) {
  return waitFor(`turn ${index}'s ${name} step: ${what}`, async () => {
    const s = await agentStep(index, name);
    return s !== undefined && check(s) ? s : null;
  }, timeoutMs, 50);
}

async function stepControl(index, name, selector) {
  const frame = await chatFrame();
  return frame.locator(`.turn[data-index="${index}"] .step[data-name="${name}"]`).last().locator(selector).first();
}

/** Whether a process runs with exactly this command line (the agent's command, seen in /proc). */
function processRunning(argv) {
  const wanted = argv.join('\0');
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '') === wanted) {
        return true;
      }
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

const BUTTONS = ['Allow', 'Allow for this conversation', 'Deny'];

async function agentScenario() {
  await step('the chat view has an Ask / Agent switch; Agent is chosen', async () => {
    await focusEditor();
    await page.locator('.part.activitybar [aria-label^="lspilot"]').first().click();
    const frame = await waitFor('the chat view', chatFrame, 60_000);
    await waitFor('the context line', async () => (await chatState())?.context === 'with calc.py', 30_000);
    if ((await chatState()).modeAgent !== 'false') {
      throw new Error('a fresh chat view is not in Ask mode');
    }
    await frame.locator('#mode-agent').click();
    await waitFor('Agent chosen', async () => (await chatState())?.modeAgent === 'true', 5_000);
  });

  await step('an agent turn shows its read step, then asks about its edit in the view and as a notification', async () => {
    await chatType([EXPECT.fix]);
    const read = await waitStep(1, 'read_file', 'done', (s) => s.status === 'done');
    log(`read step: ${read.line}`);
    if (read.link !== EXPECT.readLink || read.args !== 'calc.py lines 4-7' || read.pending !== null) {
      throw new Error(`the read step: ${JSON.stringify(read)}`);
    }
    const edit = await waitStep(1, 'edit_file', 'asked', (s) => s.pending === 'true');
    if (JSON.stringify(edit.buttons) !== JSON.stringify([...BUTTONS, 'Show diff']) || !edit.question.startsWith("lspilot's agent wants to edit calc.py")) {
      throw new Error(`the edit's question in the view: ${JSON.stringify(edit)}`);
    }
    if (!edit.line.includes('waiting for your answer')) {
      throw new Error(`the step does not say it waits: ${edit.line}`);
    }
    const note = (await chatState()).turns[1].note;
    if (!note.startsWith('waiting for your answer')) {
      throw new Error(`the turn does not say it waits: ${note}`);
    }
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: "lspilot's agent wants to edit calc.py" });
    await toast.first().waitFor({ state: 'visible', timeout: 15_000 });
    const titles = (await toast.first().locator('.monaco-button').allTextContents()).map((t) => t.trim()).filter((t) => t !== '');
    for (const title of BUTTONS) {
      if (!titles.includes(title)) {
        throw new Error(`the notification lacks ${title}: ${JSON.stringify(titles)}`);
      }
    }
    if ((await editorText()) === null || norm(await editorText()) !== norm(EXPECT.original)) {
      throw new Error('the file changed before the edit was allowed');
    }
    await screenshot('agent-approval');
  });

  await step('Show diff opens the file against the proposed text', async () => {
    await (await stepControl(1, 'edit_file', 'button[data-step-act="diff"]')).click();
    const diff = page.locator('.monaco-diff-editor').first();
    await diff.waitFor({ state: 'visible', timeout: 15_000 });
    const sides = await waitFor('both sides of the diff', async () => {
      const original = await diff.locator('.editor.original .view-lines').first().textContent().catch(() => null);
      const modified = await diff.locator('.editor.modified .view-lines').first().textContent().catch(() => null);
      const clean = (t) => (t ?? '').replace(/\u00a0/g, ' ');
      return original && modified && clean(original).includes(EXPECT.editDiffOld) && clean(modified).includes(EXPECT.editDiffNew) &&
        !clean(modified).includes(EXPECT.editDiffOld)
        ? { original, modified }
        : null;
    }, 15_000);
    log(`diff: ${JSON.stringify(sides).slice(0, 300)}`);
    const tab = await page.locator('.tabs-container .tab.active').first().textContent();
    if (!/proposed by lspilot's agent/.test(tab ?? '')) {
      throw new Error(`the diff's title: ${tab}`);
    }
    await screenshot('agent-diff');
    await runCommand('View: Close Editor');
    await waitFor('the diff closed', async () => (await page.locator('.monaco-diff-editor').count()) === 0, 10_000);
  });

  await step("the read step's link opens the file at its lines", async () => {
    await (await stepControl(1, 'read_file', 'a[data-step-act="open"]')).click();
    const status = await waitFor('lines 4-7 selected', async () => {
      const text = await statusBarText();
      return /Ln 7, Col \d+ \(\d+ selected\)/.test(text) ? text : null;
    }, 10_000);
    log(`status bar: ${status.replace(/\s+/g, ' ').slice(0, 120)}`);
  });

  await step('Allow in the view applies the edit; the turn ends with its steps and cost', async () => {
    await (await stepControl(1, 'edit_file', 'button[data-choice="Allow"]')).click();
    await waitFor('the edited file in the editor', async () => norm((await editorText()) ?? '') === norm(EXPECT.edited), 15_000);
    // answered in the view: the question's toast no longer offers buttons that do nothing
    const stale = page.locator('.notifications-toasts .notification-toast', { hasText: "lspilot's agent wants to edit calc.py" });
    await waitFor('the answered question\'s toast gone', async () => (await stale.count()) === 0, 10_000);
    const edit = await waitStep(1, 'edit_file', 'done', (s) => s.status === 'done');
    if (edit.summary !== EXPECT.editSummary || edit.answer !== 'You allowed it.' || edit.link !== EXPECT.editLink) {
      throw new Error(`the edit step after Allow: ${JSON.stringify(edit)}`);
    }
    const state = await chatAnswer(1, 'done');
    const answer = state.turns[1];
    log(`answer: ${JSON.stringify(answer.text.slice(-120))}; note: ${answer.note}`);
    if (!answer.text.includes(EXPECT.doneAnswer) || answer.mode !== 'agent') {
      throw new Error(`the agent's answer: ${JSON.stringify(answer)}`);
    }
    if (!answer.note.includes('2 steps') || !answer.note.includes(EXPECT.cost1)) {
      throw new Error(`the turn's note lacks its steps or cost ${EXPECT.cost1}: ${JSON.stringify(answer.note)}`);
    }
    if (/https?:|\*|cspSource|vscode-cdn|vscode-resource/.test(state.csp) || !/default-src 'none'/.test(state.csp)) {
      throw new Error(`the chat view's CSP allows remote content: ${state.csp}`);
    }
    await screenshot('agent-done');
  });

  await step('Deny in the notification: the step shows refused, the file stays', async () => {
    await chatType([EXPECT.rename]);
    await waitStep(3, 'edit_file', 'asked', (s) => s.pending === 'true');
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: EXPECT.renameMarker });
    await toast.first().waitFor({ state: 'visible', timeout: 15_000 });
    await screenshot('agent-deny-asked');
    await toast.first().locator('.monaco-button', { hasText: /^Deny$/ }).first().click();
    const refused = await waitStep(3, 'edit_file', 'refused', (s) => s.status === 'refused');
    if (refused.answer !== 'You denied it.' || refused.buttons.some((b) => BUTTONS.includes(b))) {
      throw new Error(`the refused step: ${JSON.stringify(refused)}`);
    }
    const state = await chatAnswer(3, 'done');
    if (!state.turns[3].text.includes(EXPECT.refusedAnswer)) {
      throw new Error(`the answer after Deny: ${JSON.stringify(state.turns[3].text)}`);
    }
    if (norm((await editorText()) ?? '') !== norm(EXPECT.edited)) {
      throw new Error('the denied edit changed the file');
    }
    await screenshot('agent-refused');
    await focusEditor();
    await page.keyboard.press('Control+S');
    await waitFor('the tab to be saved', async () => (await page.locator('.tabs-container .tab.dirty').count()) === 0, 15_000);
  });

  await step('Stop during a running command ends the turn and the command', async () => {
    await chatType([EXPECT.run]);
    await waitStep(5, 'run_command', 'asked', (s) => s.pending === 'true');
    await (await stepControl(5, 'run_command', 'button[data-choice="Allow"]')).click();
    await waitFor(`${EXPECT.sleepArgv.join(' ')} running`, async () => processRunning(EXPECT.sleepArgv), 15_000);
    const running = await agentStep(5, 'run_command');
    if (running.status !== 'running' || running.answer !== 'You allowed it.') {
      throw new Error(`the command's step while it runs: ${JSON.stringify(running)}`);
    }
    await screenshot('agent-command-running');
    const stopped = Date.now();
    await (await chatFrame()).locator('#stop').click();
    const state = await chatAnswer(5, 'cancelled');
    const took = (Date.now() - stopped) / 1000;
    const after = state.turns[5].steps.filter((s) => s.name === 'run_command').pop();
    log(`stopped in ${took.toFixed(1)} s; step ${JSON.stringify(after.line)}; note ${state.turns[5].note}`);
    if (took > 15 || after.status !== 'stopped') {
      throw new Error(`Stop took ${took} s; the step: ${JSON.stringify(after)}`);
    }
    await waitFor('the command ended', async () => !processRunning(EXPECT.sleepArgv), 10_000);
    if (!state.sendShown || state.stopShown) {
      throw new Error('Send did not come back after Stop');
    }
    await screenshot('agent-stopped');
  });
}

main().catch(fail);

// --- next edit suggestions and the status menu's MCP servers --------------------------------------

/**
 * What the editor shows on 1-based line `line`: its text, the text struck through on it, and the
 * text decorations add after a range (CSS `::after` content, which is not in the line's text).
 */
async function lineDecorations(line) {
  return page.evaluate(([selector, n]) => {
    const editor = [...document.querySelectorAll(selector)].find((e) => e.offsetParent !== null && e.querySelector('.view-lines'));
    if (!editor) {
      return null;
    }
    const lines = [...editor.querySelectorAll('.view-lines .view-line')].sort(
      (a, b) => parseFloat(a.style.top || '0') - parseFloat(b.style.top || '0'),
    );
    const element = lines[n - 1];
    if (!element) {
      return null;
    }
    const struck = [];
    const after = [];
    for (const span of element.querySelectorAll('span')) {
      if (span.children.length === 0 && getComputedStyle(span).textDecorationLine.includes('line-through')) {
        struck.push((span.textContent ?? '').replace(/\u00a0/g, ' '));
      }
      const content = getComputedStyle(span, '::after').content;
      if (content && content !== 'none' && content !== 'normal') {
        after.push(JSON.parse(content.replace(/^'|'$/g, '"')));
      }
    }
    return { text: (element.textContent ?? '').replace(/\u00a0/g, ' '), struck, after };
  }, [EDITOR, line]);
}

/** The suggestion on line 2 as the test expects it: `width` struck, `w` after it. */
async function suggestionShown() {
  const d = await lineDecorations(2);
  return d !== null && d.text === EXPECT.bodyLine && d.struck.join('') === 'width' && d.after.includes('w') ? d : null;
}

/** Line 2 shows no suggestion. */
async function suggestionGone() {
  const d = await lineDecorations(2);
  return d !== null && d.struck.length === 0 && d.after.length === 0 ? d : null;
}

async function nesScenario() {
  await step('the status bar item shows the model once the server is up', async () => {
    await waitFor('the lspilot status item', async () => (await statusItemText()).includes(EXPECT.model), 60_000);
  });

  await step('an agent turn from the chat view starts the MCP servers', async () => {
    await focusEditor();
    await page.locator('.part.activitybar [aria-label^="lspilot"]').first().click();
    const frame = await waitFor('the chat view', chatFrame, 60_000);
    await frame.locator('#mode-agent').click();
    await waitFor('Agent chosen', async () => (await chatState())?.modeAgent === 'true', 5_000);
    await chatType(['What time is it?']);
    await chatAnswer(1, 'done');
  });

  await step('the status menu lists the MCP servers with their state and tools', async () => {
    await statusItem().click();
    const list = page.locator('.quick-input-widget .quick-input-list');
    await list.waitFor({ state: 'visible', timeout: 10_000 });
    const rows = await waitFor('the MCP servers in the menu', async () => {
      const texts = (await list.locator('.monaco-list-row').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
      const all = Object.entries(EXPECT.mcp).every(([name, state]) => texts.some((t) => t.includes(name) && t.includes(state)));
      return all && texts.some((t) => t.includes('MCP servers')) ? texts : null;
    }, 15_000);
    log(`status menu: ${JSON.stringify(rows)}`);
    await screenshot('status-menu-mcp-servers');
    await page.keyboard.press('Escape');
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
  });

  await step('rename a parameter on line 1: the suggestion shows on line 2', async () => {
    await focusEditor();
    await page.keyboard.press('Control+G');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.fill(':1');
    await page.keyboard.press('Enter');
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
    await page.keyboard.press('Home');
    for (let i = 0; i < 'def area('.length; i++) {
      await page.keyboard.press('ArrowRight');
    }
    for (let i = 0; i < 'width'.length; i++) {
      await page.keyboard.press('Shift+ArrowRight');
    }
    await page.keyboard.type('w');
    await waitFor('the renamed line', async () => (await lineDecorations(1))?.text === EXPECT.renamedLine, 10_000);
    const shown = await waitFor('the suggestion on line 2', suggestionShown, 30_000);
    log(`suggestion: ${JSON.stringify(shown)}`);
    await screenshot('nes-suggestion');
  });

  await step('Tab jumps to it', async () => {
    await page.keyboard.press('Tab');
    await waitFor('the cursor on line 2', async () => /Ln 2, Col 12\b/.test(await statusBarText()), 10_000);
    if (!(await suggestionShown()) || (await lineDecorations(1))?.text !== EXPECT.renamedLine) {
      throw new Error('the jump changed the text or lost the suggestion');
    }
  });

  await step('Tab again accepts it; one Ctrl+Z undoes it whole', async () => {
    await page.keyboard.press('Tab');
    await waitFor('the accepted line', async () => {
      const d = await lineDecorations(2);
      return d?.text === EXPECT.acceptedLine && d.after.length === 0 && d.struck.length === 0;
    }, 10_000);
    await screenshot('nes-accepted');
    await page.keyboard.press('Control+Z');
    await waitFor('the edit undone in one step', async () =>
      (await lineDecorations(2))?.text === EXPECT.bodyLine && (await lineDecorations(1))?.text === EXPECT.renamedLine, 10_000);
  });

  await step('a newer edit clears the suggestion at once', async () => {
    await waitFor('the suggestion again', suggestionShown, 30_000);
    // typed near (the suggestion after the undo is asked at the cursor: its region must hold line 2)
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('End');
    const typed = Date.now();
    await page.keyboard.type('x');
    // a new suggestion needs at least the model's stall: gone before that, the edit cleared it
    await waitFor('the stale suggestion to go', suggestionGone, EXPECT.stallMs - 300, 25);
    log(`cleared ${Date.now() - typed} ms after the edit`);
    await page.keyboard.press('Control+Z');
    await waitFor('the x undone', async () => (await lineDecorations(1))?.text === EXPECT.renamedLine, 10_000);
  });

  await step('its hover shows the diff (Alt+] jumps there); Escape closes the hover, then dismisses it', async () => {
    await waitFor('the suggestion again', suggestionShown, 30_000);
    await page.keyboard.press('Alt+BracketRight');
    await waitFor('the cursor on line 2', async () => /Ln 2, Col 12\b/.test(await statusBarText()), 10_000);
    await page.keyboard.press('Control+K');
    await page.keyboard.press('Control+I');
    const hover = page.locator('.monaco-hover', { hasText: 'lspilot: next edit' });
    await hover.first().waitFor({ state: 'visible', timeout: 10_000 });
    // The hover shows its header before its Markdown (the diff) has rendered: wait for it.
    let text = '';
    await waitFor('the hover with its diff', async () => {
      text = await hover.first().innerText();
      return EXPECT.hoverOld && text.includes(EXPECT.hoverOld) && text.includes(EXPECT.hoverNew);
    }, 10_000).catch(() => {});
    log(`hover: ${JSON.stringify(text)}`);
    for (const part of [EXPECT.hoverOld, EXPECT.hoverNew]) {
      if (!text.includes(part)) {
        throw new Error(`the hover lacks ${JSON.stringify(part)}`);
      }
    }
    await screenshot('nes-hover');
    await page.keyboard.press('Escape');
    await hover.first().waitFor({ state: 'hidden', timeout: 10_000 });
    if (!(await suggestionShown())) {
      throw new Error('closing the hover dismissed the suggestion');
    }
    await page.keyboard.press('Escape');
    await waitFor('the suggestion dismissed', suggestionGone, EXPECT.stallMs - 300, 25);
    if ((await lineDecorations(2))?.text !== EXPECT.bodyLine) {
      throw new Error('dismissing changed the line');
    }
    await screenshot('nes-dismissed');
  });

  await step('save', async () => {
    await page.keyboard.press('Control+S');
    await waitFor('the tab to be saved', async () => (await page.locator('.tabs-container .tab.dirty').count()) === 0, 15_000);
  });
}

// --- issue 28, VS Code: the edit preview, test output, key onboarding, the status page ----------

/** The visible notification toast whose text matches `pattern`, or null. */
async function toastMatching(pattern) {
  const toasts = page.locator('.notifications-toasts .notification-toast');
  const n = await toasts.count();
  for (let i = 0; i < n; i++) {
    // a short limit: a toast going away meanwhile must not hold the poll (others purge meanwhile)
    const text = ((await toasts.nth(i).innerText({ timeout: 500 }).catch(() => '')) ?? '').replace(/\s+/g, ' ');
    if (pattern.test(text)) {
      return toasts.nth(i);
    }
  }
  return null;
}

/** The editor title bar's action `label` (of the active editor group), or null. */
async function titleAction(label) {
  const action = page.locator(`.editor-group-container.active .editor-actions a.action-label[aria-label^="${label}"]`);
  return (await action.count()) > 0 ? action.first() : null;
}

/** The text the visible diff editor shows (both sides, or the inline view), or null. */
async function diffModifiedText() {
  return page.evaluate(() => {
    const diff = [...document.querySelectorAll('.monaco-diff-editor')].find((e) => {
      const box = e.getBoundingClientRect();
      return box.width > 0 && box.height > 0;
    });
    return diff ? (diff.textContent ?? '').replace(/\u00a0/g, ' ') : null;
  });
}

/** The tab titled `name` shows unsaved changes. */
async function tabDirty(name) {
  const tab = page.locator('.tabs-container .tab', { has: page.locator('.label-name', { hasText: new RegExp(`^${name.replace(/\./g, '\\.')}$`) }) });
  return (await tab.count()) > 0 && (await tab.first().getAttribute('class')).split(/\s+/).includes('dirty');
}

/** Runs a Refactor on `lines` and waits for lspilot's diff with Accept / Reject in its title bar. */
async function refactorIntoPreview(lines, expected) {
  await focusEditor();
  await selectLines(...lines);
  await runCommand('lspilot: Refactor');
  await waitFor('the preview diff', async () => (await titleAction("Accept lspilot's change")) !== null, 60_000);
  const right = await waitFor('the proposed text on the right', async () => {
    const t = await diffModifiedText();
    return t !== null && t.includes(expected) ? t : null;
  }, 20_000);
  if ((await titleAction("Reject lspilot's change")) === null) {
    throw new Error('the diff has Accept but no Reject');
  }
  const tab = await page.locator('.tabs-container .tab.active').first().innerText();
  log(`preview tab: ${JSON.stringify(tab)}; proposed:\n${right}`);
  if (!tab.includes('proposed change')) {
    throw new Error(`the diff is not lspilot's preview: ${tab}`);
  }
}

async function uxScenario() {
  await step('no key for the endpoint: the status item warns', async () => {
    await waitFor('the lspilot status item', async () => (await statusItemText()).includes(EXPECT.model), 60_000);
    await waitFor('the warning sign on the status item', () => statusItemIcon('warning'), 20_000);
    const classes = await statusItem().getAttribute('class');
    log(`status item: ${JSON.stringify(await statusItemText())} (${classes})`);
    if (!/warning-kind/.test(classes ?? '')) {
      throw new Error(`the status item has no warning background: ${classes}`);
    }
    await screenshot('ux-status-no-key');
  });

  await step('an action without a key: the error offers Set API key…, which stores one', async () => {
    await focusEditor();
    await selectLines(...EXPECT.explainLines);
    await runCommand('lspilot: Explain');
    const toast = await waitFor('the missing-key error', () => toastMatching(/API key/), 30_000);
    const text = (await toast.innerText()).replace(/\s+/g, ' ');
    log(`error: ${text}`);
    const button = toast.locator('.monaco-button', { hasText: /^Set API key…$/ });
    await button.first().waitFor({ state: 'visible', timeout: 10_000 });
    await page.waitForTimeout(500); // the toast slides in
    await screenshot('ux-missing-key-error');
    const input = page.locator('.quick-input-widget input[type="password"]');
    // a click while the toast still slides in may miss it: click until the input box opens
    await waitFor('the key input box', async () => {
      if (await input.isVisible()) {
        return true;
      }
      await button.first().click({ timeout: 2_000 }).catch(() => undefined);
      await input.waitFor({ state: 'visible', timeout: 2_000 }).catch(() => undefined);
      return input.isVisible();
    }, 15_000);
    await input.fill(EXPECT.apiKey);
    await page.keyboard.press('Enter');
    await waitFor('the key saved', () => toastMatching(/API key saved/), 15_000);
    await waitFor('the warning gone from the status item', async () => !(await statusItemIcon('warning')), 20_000);
  });

  await step('confirmEdits: Refactor opens lspilot\'s diff; Accept in its title bar applies it', async () => {
    await refactorIntoPreview(EXPECT.refactorLines, EXPECT.refactoredCode.split('\n')[1].trim());
    // the progress says so, without a Cancel that would leave the diff asking
    const waiting = await waitFor('the progress waiting for the review', () => toastMatching(/Waiting for your review/), 15_000);
    log(`progress while reviewing: ${(await waiting.innerText()).replace(/\s+/g, ' ')}`);
    if ((await waiting.locator('.monaco-button', { hasText: /^Cancel$/ }).count()) > 0) {
      throw new Error('the progress offers Cancel while the review is open');
    }
    // the notification with Cancel it replaced goes away
    await waitFor('no progress with Cancel', async () => (await notificationWithCancel()) === null, 10_000);
    await screenshot('ux-preview-diff');
    await (await titleAction("Accept lspilot's change")).click();
    await waitFor('the preview closed', async () => (await titleAction("Accept lspilot's change")) === null, 10_000);
    await waitFor('the refactored file', async () => norm((await editorTextOf(EXPECT.file)) ?? '').includes(EXPECT.refactoredCode), 20_000);
    await waitFor('Refactor done', () => toastMatching(/Refactor done/), 20_000);
  });

  await step('Reject in the title bar: nothing changes, and lspilot says you declined it', async () => {
    const before = await editorTextOf(EXPECT.file);
    await refactorIntoPreview(EXPECT.rejectLines, EXPECT.rejectedCode);
    await (await titleAction("Reject lspilot's change")).click();
    log('clicked Reject');
    await waitFor('the preview closed', async () => (await titleAction("Reject lspilot's change")) === null, 10_000);
    log('the preview closed');
    // the outcome: in the status bar, and as a notification (which VS Code may put straight into
    // the notification center when several come at once)
    const text = await waitFor('the declined message', async () => {
      const toast = await toastMatching(/declined/i);
      if (toast !== null) {
        return (await toast.innerText({ timeout: 500 }).catch(() => '')).replace(/\s+/g, ' ') || null;
      }
      const bar = (await statusBarText().catch(() => '')).replace(/\s+/g, ' ');
      return /declined/i.test(bar) ? bar : null;
    }, 20_000);
    log(`declined: ${text}`);
    await page.waitForTimeout(500); // a toast slides in
    await screenshot('ux-declined');
    if (!/you declined it/i.test(text) || /failed/i.test(text)) {
      throw new Error(`a declined change must say "not applied: you declined it", not fail: ${text}`);
    }
    if ((await toastMatching(/Refactor failed/i)) !== null) {
      throw new Error('a declined change showed a failure');
    }
    if ((await editorTextOf(EXPECT.file)) !== before) {
      throw new Error('the rejected change is in the file');
    }
  });

  await step('Write tests: the new file in the preview, accepted from the status bar; the tests run; Show output', async () => {
    await focusEditor();
    await selectLines(...EXPECT.testLines);
    await runCommand('lspilot: Write tests');
    await waitFor('the preview diff', async () => (await titleAction("Accept lspilot's change")) !== null, 60_000);
    await waitFor('the proposed tests', async () => ((await diffModifiedText()) ?? '').includes(EXPECT.testCode.split('\n')[0]), 20_000);
    // Accept from the status bar this time
    const accept = page.locator('#workbench\\.parts\\.statusbar .statusbar-item', { hasText: "Accept lspilot's change" }).first();
    await accept.waitFor({ state: 'visible', timeout: 10_000 });
    await accept.click();
    await waitFor('Accept gone from the status bar', async () => (await accept.count()) === 0 || !(await accept.isVisible()), 10_000);
    // the server asks before it runs code the model wrote
    const run = await waitFor('the question to run the tests', () => toastMatching(/run the new tests/i), 30_000);
    await run.locator('.monaco-button', { hasText: /^Run$/ }).first().click();
    const done = await waitFor('Write tests done with Show output', async () => {
      const toast = await toastMatching(/Write tests done/);
      return toast !== null && (await toast.locator('.monaco-button', { hasText: /^Show output$/ }).count()) > 0 ? toast : null;
    }, 90_000);
    log(`tests: ${(await done.innerText()).replace(/\s+/g, ' ')}`);
    await done.locator('.monaco-button', { hasText: /^Show output$/ }).first().click();
    const panel = page.locator('.part.panel');
    const output = await waitFor('the lspilot tests output', async () => {
      const text = ((await panel.innerText().catch(() => '')) ?? '').replace(/\u00a0/g, ' ');
      return text.includes(EXPECT.testCommandShown) && /1 passed/.test(text) ? text : null;
    }, 20_000);
    log(`output panel: ${JSON.stringify(output.slice(0, 600))}`);
    await screenshot('ux-show-output');
    if (await tabDirty(EXPECT.testFile)) {
      throw new Error(`${EXPECT.testFile} is marked unsaved although lspilot wrote it to disk`);
    }
    const onDisk = fs.readFileSync(path.join(FOLDER, EXPECT.testFile), 'utf8');
    if (!onDisk.includes(EXPECT.testCode)) {
      throw new Error(`${EXPECT.testFile} on disk lacks the tests: ${JSON.stringify(onDisk)}`);
    }
  });

  await step('Show status: a quick pick with the session split into actions, chat and ghost text', async () => {
    await runCommand('lspilot: Show status', { asks: true });
    const list = page.locator('.quick-input-widget .quick-input-list');
    await list.waitFor({ state: 'visible', timeout: 10_000 });
    const text = await waitFor('the status lines', async () => {
      const t = ((await page.locator('.quick-input-widget').innerText()) ?? '').replace(/[ \t]+/g, ' ');
      return t.includes('This session:') ? t : null;
    }, 10_000);
    log(`status quick pick:\n${text}`);
    await screenshot('ux-status-quick-pick');
    for (const part of [`Model: ${EXPECT.model}`, 'API key: set', 'Actions: ', 'Chat: no requests yet', 'Ghost text: no requests yet']) {
      if (!text.includes(part)) {
        throw new Error(`the status lacks ${JSON.stringify(part)}`);
      }
    }
    if (text.includes(EXPECT.apiKey)) {
      throw new Error('the status shows the API key');
    }
    if ((await seen()).dialogs.length > 0) {
      throw new Error(`a modal dialog opened: ${JSON.stringify((await seen()).dialogs)}`);
    }
    await page.keyboard.press('Escape');
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });
  });
}

/** Agent mode: Show diff on the step the agent asks about has Accept / Reject, which answer it. */
async function uxAgentScenario() {
  await step('an agent turn asks about its edit', async () => {
    await focusEditor();
    await page.locator('.part.activitybar [aria-label^="lspilot"]').first().click();
    const frame = await waitFor('the chat view', chatFrame, 60_000);
    await frame.locator('#mode-agent').click();
    await waitFor('Agent chosen', async () => (await chatState())?.modeAgent === 'true', 5_000);
    await chatType([EXPECT.fix]);
    await waitStep(1, 'edit_file', 'asked', (s) => s.pending === 'true', 60_000);
  });

  await step("Show diff has Accept / Reject; Accept allows the edit", async () => {
    await (await stepControl(1, 'edit_file', 'button[data-step-act="diff"]')).click();
    await waitFor('Accept in the diff\'s title bar', async () => (await titleAction("Accept lspilot's change")) !== null, 15_000);
    await waitFor('the proposed text', async () => ((await diffModifiedText()) ?? '').includes(EXPECT.editDiffNew), 15_000);
    await screenshot('ux-agent-diff-accept');
    await (await titleAction("Accept lspilot's change")).click();
    const edit = await waitStep(1, 'edit_file', 'done', (s) => s.status === 'done', 30_000);
    log(`step: ${JSON.stringify(edit)}`);
    if (edit.answer !== 'You allowed it.') {
      throw new Error(`the step was not allowed: ${JSON.stringify(edit)}`);
    }
    await waitFor('the diff closed', async () => (await titleAction("Accept lspilot's change")) === null, 10_000);
    await waitFor('the edited file', async () => norm((await editorTextOf(EXPECT.file)) ?? '') === norm(EXPECT.edited), 15_000);
  });
}
