// What `dfs put --json` of several files reports when something stops it half-way (a master or a
// whole cluster told to stop): each file either stored whole or failed with one catalogue error.

import assert from 'node:assert/strict'
import {basename} from 'node:path'

import {SOME_FAILED_EXIT} from '../../src/lib/base-command.js'
import {ERRORS} from '../../src/lib/errors.js'

export type PutOutcome = {path: string; name: string; sha256: string} | {path: string; error: string; message: string}

/**
 * Parses the report of a put of `count` files and checks each outcome: a stored file has the
 * sha256 of its source in `sources` (local basename → sha256), a failure is a catalogue code with a
 * one-line message; the exit code is 0 only if every file was stored (else the documented code).
 */
export function assertPutOutcomes(put: {code: number | null; stdout: string; stderr: string}, count: number, sources: Map<string, string>): PutOutcome[] {
  const outcomes = JSON.parse(put.stdout) as PutOutcome[]
  assert.equal(outcomes.length, count, put.stdout)
  for (const outcome of outcomes) {
    if ('sha256' in outcome) assert.equal(outcome.sha256, sources.get(basename(outcome.path)), outcome.path)
    else {
      assert.ok(Object.hasOwn(ERRORS, outcome.error), `a catalogue code: ${outcome.error}`)
      assert.doesNotMatch(outcome.message, /\n/)
    }
  }

  const failure = outcomes.find((outcome) => !('sha256' in outcome)) as {error: keyof typeof ERRORS} | undefined
  assert.equal(put.code, !failure ? 0 : count > 1 ? SOME_FAILED_EXIT : ERRORS[failure.error].exit, put.stderr)
  return outcomes
}
