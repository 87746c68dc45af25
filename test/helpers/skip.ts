// A fault test that cannot run on this machine (no root to mount a small disk, a filesystem that
// ignores read-only modes) says so in one place: skipped on a developer's machine, failed under CI,
// where a skipped fault test would pass without proving anything.

import {execFileSync} from 'node:child_process'
import type {TestContext} from 'node:test'

/** Skips the test with `reason`, or fails it with `reason` when env CI is set; return right after calling it. */
export function skipOrFail(t: TestContext, reason: string): void {
  if (underCi()) throw new Error(`this fault test cannot run here, and under CI that is a failure: ${reason}`)
  t.skip(reason)
}

/** CI=true, CI=1 and the like; CI=false or an empty CI is a developer saying "not CI". */
function underCi(): boolean {
  const ci = process.env.CI?.trim().toLowerCase()
  return ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false'
}

/**
 * Runs `work` while `dir` is immutable (`chattr +i`: nothing can be created in it, as on a disk gone
 * read-only), and makes it writable again after, pass or fail. Where the flag cannot be set (no
 * root, a file system without it) the test is skipped (failed under CI) and `work` does not run:
 * returns whether it ran, so that the test returns too.
 */
export async function whileImmutable(t: TestContext, dir: string, work: () => Promise<void>): Promise<boolean> {
  try {
    execFileSync('chattr', ['+i', dir], {stdio: 'pipe'})
  } catch (error) {
    skipOrFail(t, `chattr +i needs root and a file system that has the flag: ${String((error as {stderr?: Buffer}).stderr ?? error).trim()}`)
    return false
  }

  try {
    await work()
  } finally {
    execFileSync('chattr', ['-i', dir])
  }

  return true
}
