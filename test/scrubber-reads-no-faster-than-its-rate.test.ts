import assert from 'node:assert/strict'
import {open} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable, Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {describe, test} from 'node:test'

import {Throttle, throttleDelay, type Clock} from '../src/lib/throttle.js'
import {clusterPerTest, randomFile, waitFor, type TestCluster} from './helpers/cluster.js'
import {startKeeper} from './helpers/keeper-process.js'

const KiB = 1024
const MiB = 1024 * KiB

/** A clock that only moves when slept on (or when a test moves it). */
class FakeClock implements Clock {
  time = 1_000_000
  readonly sleeps: number[] = []

  now(): number {
    return this.time
  }

  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms)
    this.time += ms
  }
}

/** Pipes `chunks` through a throttle on `clock`; at each chunk that comes out: ms since the start, and bytes out so far. */
async function throttled(clock: FakeClock, rate: number, chunks: Buffer[], beforeEach?: (index: number) => void): Promise<Array<{ms: number; bytes: number}>> {
  const started = clock.now()
  const throttle = new Throttle(rate, clock)
  const out: Array<{ms: number; bytes: number}> = []
  let bytes = 0
  const source = Readable.from((function* () {
    for (const [index, chunk] of chunks.entries()) {
      beforeEach?.(index)
      yield chunk
    }
  })())
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      bytes += chunk.length
      out.push({ms: clock.now() - started, bytes})
      done()
    },
  })
  await pipeline(source, throttle, sink)
  return out
}

describe('the scrubber reads no faster than its rate', () => {
  test('pacing decisions: a chunk waits until the bytes so far fit the rate, and not a moment longer', () => {
    const rate = 64 * KiB
    assert.equal(throttleDelay(64 * KiB, 0, rate), 1000)
    assert.equal(throttleDelay(64 * KiB, 400, rate), 600)
    assert.equal(throttleDelay(64 * KiB, 1000, rate), 0)
    assert.equal(throttleDelay(32 * KiB, 2000, rate), 0, 'time that passed is not owed back')
    assert.equal(throttleDelay(3 * 64 * KiB, 1500, rate), 1500)
  })

  test('a throttled stream never runs ahead of its rate, and ends when the rate says', async () => {
    const clock = new FakeClock()
    const rate = 64 * KiB
    const out = await throttled(clock, rate, Array.from({length: 20}, () => Buffer.alloc(16 * KiB)))
    for (const {ms, bytes} of out) assert.ok(bytes <= (rate * ms) / 1000, `${bytes} bytes out after ${ms} ms`)
    assert.equal(out.at(-1)!.bytes, 320 * KiB)
    assert.equal(out.at(-1)!.ms, 5000)
    assert.equal(clock.sleeps.length, 20, 'each chunk waited its turn')
  })

  test('time a slow read lost is made up, never more', async () => {
    const clock = new FakeClock()
    const rate = 64 * KiB
    // The first read takes 2 s (a busy disk): the next 2 s worth of chunks pass at once.
    const out = await throttled(clock, rate, Array.from({length: 20}, () => Buffer.alloc(16 * KiB)), (index) => {
      if (index === 0) clock.time += 2000
    })
    assert.deepEqual(out.slice(0, 8).map(({ms}) => ms), Array.from({length: 8}, () => 2000))
    for (const {ms, bytes} of out) assert.ok(bytes <= (rate * ms) / 1000, `${bytes} bytes out after ${ms} ms`)
    assert.equal(out.at(-1)!.ms, 5000)
  })

  const clusters = clusterPerTest()

  test('with a tiny rate a corrupt replica is not found before the rate allows it; with a high rate it is', async (t) => {
    const rate = 16 * KiB
    const size = 4 * MiB
    const cluster = await clusters.start({keepers: 1, replicas: 1, keeperArgs: ['--scrub-interval', '100ms', '--scrub-rate', String(rate)]})
    const keeper = cluster.keepers[0]!
    const path = join(clusters.work, 'scrubbed.bin')
    await randomFile(path, size)
    assert.equal((await cluster.dfs(['put', path])).code, 0)
    // No scrub can have read this file before it was stored.
    const storedAt = Date.now()
    const {fileId, replicas} = await cluster.stat('scrubbed.bin')
    await flipLastByte(cluster.blobPath(replicas[0]!.keeper, fileId))

    await waitFor('a scrub pass over the file to start', () => keeper.logs.some((line) => line.includes(`re-hashing 1 files, ${size} bytes, at up to ${rate} bytes/s`)))
    // Long enough for an unthrottled pass to read 4 MiB many times over.
    await heartbeats(cluster, keeper.id, 10)
    const checkedAt = Date.now()
    assert.ok(((checkedAt - storedAt) / 1000) * rate < size, 'the rate could not have let the whole file through yet')
    assert.ok(!keeper.logs.some((line) => line.includes('is corrupt')), 'found before the rate allowed it')
    assert.ok(!keeper.logs.some((line) => /scrub pass \d+ done/.test(line)), 'a pass over the file ended before the rate allowed it')
    assert.equal((await cluster.dfsJson<Array<{replicas: number}>>(['ls']))[0]!.replicas, 1)

    // The same replica, scrubbed at a high rate, is found corrupt.
    const dir = cluster.dataDirOf(keeper)
    await keeper.stop('SIGKILL')
    const fast = await startKeeper(t, cluster, dir, ['--scrub-interval', '100ms', '--scrub-rate', '1g'])
    await waitFor('the corrupt replica found', () => fast.logs.some((line) => line.includes('scrubbed.bin') && line.includes('is corrupt')))
    await waitFor('the pass to end', () => fast.logs.some((line) => /scrub pass \d+ done: 1 of 1 files checked in [\d.]+ s, 1 corrupt/.test(line)))
    // Its only replica dropped, the file is missing (fsck exits non-zero): the report says why.
    const fsck = await cluster.masterJson<{files: Array<{corrupt: number; health: string}>}>('/fsck')
    assert.deepEqual(fsck.body.files.map(({corrupt, health}) => ({corrupt, health})), [{corrupt: 1, health: 'missing'}])
  })
})

async function flipLastByte(path: string): Promise<void> {
  const handle = await open(path, 'r+')
  try {
    const {size} = await handle.stat()
    const byte = Buffer.alloc(1)
    await handle.read(byte, 0, 1, size - 1)
    byte[0] = byte[0]! ^ 0xff
    await handle.write(byte, 0, 1, size - 1)
  } finally {
    await handle.close()
  }
}

/** Waits until the master heard `count` more heartbeats from a keeper. */
async function heartbeats(cluster: TestCluster, id: string, count: number): Promise<void> {
  const seen = new Set<string>()
  await waitFor(`${count} heartbeats of ${id}`, async () => {
    const keeper = (await cluster.keeperStatus()).find((candidate) => candidate.id === id) as {lastHeartbeat?: string | null} | undefined
    if (keeper?.lastHeartbeat) seen.add(keeper.lastHeartbeat)
    return seen.size > count
  })
}
