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
//   E2E_EXPECT     JSON: { original, refactoredPrefix, refactoredSuffix, refactoredCode, oldCode,
//                  explainText, explainHtml, instruction, instructedCode, testFile, testCode,
//                  refactorLines: [first, count], explainLines, cancelLines }
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

async function step(name, fn) {
  currentStep = name;
  const started = Date.now();
  log(`step: ${name}`);
  const result = await fn();
  log(`ok: ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
  return result;
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
          title: document.getElementById('title')?.textContent ?? '',
          text: content.textContent ?? '',
          html: content.innerHTML,
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
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
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
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => undefined);
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
  });

  await step('a server that cannot start gets a message with the fix', async () => {
    const settings = path.join(FOLDER, '.vscode', 'settings.json');
    fs.writeFileSync(settings, JSON.stringify({ 'lspilot.serverCommand': [path.join(FOLDER, 'no-such-lspilot')] }));
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'could not start' });
    await toast.first().waitFor({ state: 'visible', timeout: 30_000 });
    const message = await toast.first().innerText();
    for (const part of ['no-such-lspilot', 'does not exist', 'pip install lspilot', 'lspilot.serverCommand', 'lspilot.pythonPath']) {
      if (!message.includes(part)) {
        throw new Error(`the start error lacks ${JSON.stringify(part)}: ${message}`);
      }
    }
    log(`start error: ${message.replace(/\s+/g, ' ')}`);
    await screenshot('start-error');
  });

  clearTimeout(watchdog);
  await browser.close();
  log('PASS');
}

main().catch(fail);
