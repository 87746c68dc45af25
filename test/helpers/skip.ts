import type {TestContext} from 'node:test'

/** A fault test that cannot run on this machine: skipped for a developer, a failure under CI (a green CI run means it ran). */
export function skipOrFail(t: TestContext, reason: string): void {
  if (process.env.CI) throw new Error(`this test cannot run here, and under CI a skip is a failure: ${reason}`)
  t.skip(reason)
}
