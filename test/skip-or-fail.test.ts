import assert from 'node:assert/strict'
import {afterEach, test, type TestContext} from 'node:test'

import {skipOrFail} from './helpers/skip.js'

// skipOrFail against a stand-in context: what it does to a test is to skip it or to throw.
const ci = process.env.CI
afterEach(() => {
  if (ci === undefined) delete process.env.CI
  else process.env.CI = ci
})

function recorder(): {t: TestContext; skipped: string[]} {
  const skipped: string[] = []
  return {t: {skip: (reason: string) => skipped.push(reason)} as unknown as TestContext, skipped}
}

test('outside CI a test that cannot run here is skipped with the reason', () => {
  for (const value of [undefined, '', 'false', '0']) {
    if (value === undefined) delete process.env.CI
    else process.env.CI = value
    const {t, skipped} = recorder()
    skipOrFail(t, 'needs root')
    assert.deepEqual(skipped, ['needs root'], `CI=${value}`)
  }
})

test('under CI it fails with the reason instead of skipping', () => {
  for (const value of ['true', '1', 'yes']) {
    process.env.CI = value
    const {t, skipped} = recorder()
    assert.throws(() => skipOrFail(t, 'needs root'), /needs root/, `CI=${value}`)
    assert.deepEqual(skipped, [])
  }
})
