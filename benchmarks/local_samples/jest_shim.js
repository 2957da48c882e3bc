'use strict';
// A minimal Jest-style global API on top of node:test, for `node --test --require`:
// lspilot asks for Jest/Vitest-style tests in JavaScript (describe, it, expect), which
// plain `node --test` does not provide. Only the common matchers.
const test = require('node:test');
const assert = require('node:assert');

function matchers(actual, negate) {
  const check = (ok, message) => {
    if (ok === negate) throw new assert.AssertionError({ message, actual });
  };
  const deepEqual = (a, b) => {
    try { assert.deepStrictEqual(a, b); return true; } catch { return false; }
  };
  const throws = (expected) => {
    try { actual(); } catch (error) {
      if (expected === undefined) return true;
      if (typeof expected === 'function') return error instanceof expected;
      if (expected instanceof Error) return String(error && error.message) === expected.message;
      if (expected instanceof RegExp) return expected.test(String(error && error.message));
      return String(error && error.message).includes(String(expected));
    }
    return false;
  };
  return {
    toBe: (e) => check(Object.is(actual, e), `expected ${String(actual)} to be ${String(e)}`),
    toEqual: (e) => check(deepEqual(actual, e), 'expected deep equality'),
    toStrictEqual: (e) => check(deepEqual(actual, e), 'expected deep equality'),
    toBeNull: () => check(actual === null, 'expected null'),
    toBeUndefined: () => check(actual === undefined, 'expected undefined'),
    toBeDefined: () => check(actual !== undefined, 'expected defined'),
    toBeTruthy: () => check(Boolean(actual), 'expected truthy'),
    toBeFalsy: () => check(!actual, 'expected falsy'),
    toHaveLength: (n) => check(actual != null && actual.length === n, `expected length ${n}`),
    toContain: (e) => check(actual != null && actual.includes(e), 'expected to contain'),
    toBeGreaterThan: (e) => check(actual > e, 'expected greater'),
    toBeLessThan: (e) => check(actual < e, 'expected less'),
    toBeCloseTo: (e, digits = 2) =>
      check(Math.abs(actual - e) < 10 ** -digits / 2, 'expected close'),
    toThrow: (e) => check(throws(e), 'expected to throw'),
    toThrowError: (e) => check(throws(e), 'expected to throw'),
  };
}

function expect(actual) {
  const m = matchers(actual, false);
  m.not = matchers(actual, true);
  return m;
}

Object.assign(globalThis, {
  describe: test.describe, it: test.it, test: test.test, expect,
  beforeEach: test.beforeEach, afterEach: test.afterEach,
  beforeAll: test.before, afterAll: test.after,
});
