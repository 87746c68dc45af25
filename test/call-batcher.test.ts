// CallBatcher (pure logic): calls made while a batch is under way leave together in the next, up
// to maxItems; each call gets its own answer or error, and a failed request fails its batch alone.

import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {CallBatcher} from '../src/lib/call-batcher.js'

/** A batcher whose requests wait until the test answers them; it records every batch sent. */
function heldBatcher(maxItems: number) {
  const batches: number[][] = []
  const pending: Array<{items: number[]; answer: (answers: Array<number | Error>) => void; fail: (error: Error) => void}> = []
  const batcher = new CallBatcher<number, number>(
    (items) => {
      batches.push(items)
      return new Promise((resolve, reject) => pending.push({items, answer: resolve, fail: reject}))
    },
    {maxItems, maxInFlight: 1},
  )
  return {batcher, batches, pending}
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('CallBatcher', () => {
  test('the calls of one turn leave together; those made while it is under way go in the next, at most maxItems a request, each answered with its own', async () => {
    const {batcher, batches, pending} = heldBatcher(3)
    const first = [1, 2].map((item) => batcher.call(item))
    await turn()
    assert.deepEqual(batches, [[1, 2]])
    // Settled as they come: a call refused before the test looks is not an unhandled rejection.
    const later = Promise.allSettled([3, 4, 5, 6].map((item) => batcher.call(item)))
    await turn()
    assert.deepEqual(batches, [[1, 2]], 'nothing more leaves while a request is under way')
    pending.shift()!.answer([10, 20])
    assert.deepEqual(await Promise.all(first), [10, 20])
    await turn()
    assert.deepEqual(batches, [[1, 2], [3, 4, 5]])
    pending.shift()!.answer([30, new Error('refused 4'), 50])
    await turn()
    assert.deepEqual(batches, [[1, 2], [3, 4, 5], [6]])
    pending.shift()!.answer([60])
    assert.deepEqual(
      (await later).map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : (outcome.reason as Error).message)),
      [30, 'refused 4', 50, 60],
    )
  })

  test('a request that fails, or answers another number of items, fails every call of its batch and no other', async () => {
    const {batcher, pending} = heldBatcher(10)
    const failed = Promise.allSettled([1, 2].map((item) => batcher.call(item)))
    await turn()
    const next = Promise.allSettled([batcher.call(3)])
    pending.shift()!.fail(new Error('no master'))
    assert.deepEqual((await failed).map((outcome) => outcome.status === 'rejected' && (outcome.reason as Error).message), ['no master', 'no master'])
    await turn()
    pending.shift()!.answer([1, 2])
    const [mismatched] = await next
    assert.equal(mismatched!.status === 'rejected' && (mismatched.reason as {code?: string}).code, 'DFS_ERR_BAD_RESPONSE')
    const after = batcher.call(4)
    await turn()
    pending.shift()!.answer([40])
    assert.equal(await after, 40)
  })
})
