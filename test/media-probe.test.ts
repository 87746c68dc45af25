import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {open, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {PROBE_LIMITS, mayBeMedia, probeMedia} from '../src/roles/keeper/media-probe.js'
import {FIXTURES, tempDir} from './helpers/cluster.js'
import {SAMPLE_MEDIA, topLevelTypes, withMoovAtEnd} from './helpers/mp4-files.js'

// sample_1's top-level boxes: ftyp (32 bytes), moov (11824), free, mdat.
const SAMPLE_1_MOOV_BYTES = 11_824

describe('a keeper reads what an mp4 is from its box headers, ftyp and moov', () => {
  let dir: string
  let sample1: Buffer
  const write = async (name: string, bytes: Buffer | string) => {
    const path = join(dir, name)
    await writeFile(path, bytes)
    return path
  }

  before(async () => {
    dir = await tempDir()
    sample1 = await readFile(join(FIXTURES, 'sample_1.mp4'))
  })
  after(() => rm(dir, {recursive: true, force: true}))

  test('the samples: duration, resolution, codecs, bitrate, moov at the front', async () => {
    for (const [name, media] of Object.entries(SAMPLE_MEDIA)) assert.deepEqual(await probeMedia(join(FIXTURES, name)), media, name)
  })

  test('the same movie with moov after the media data is described alike, and flagged as not fast-start', async () => {
    const moved = withMoovAtEnd(sample1)
    assert.deepEqual(topLevelTypes(moved), ['ftyp', 'free', 'mdat', 'moov'])
    assert.deepEqual(await probeMedia(await write('moov-at-end.mp4', moved)), {...SAMPLE_MEDIA['sample_1.mp4'], fastStart: false})
  })

  test('what is not an mp4 has no metadata: random bytes, text, an empty file, ftyp alone', async () => {
    assert.equal(await probeMedia(await write('random.bin', randomBytes(100_000))), null)
    assert.equal(await probeMedia(await write('text.mp4', 'hello, this is not a movie\n'.repeat(1000))), null)
    assert.equal(await probeMedia(await write('empty.mp4', Buffer.alloc(0))), null)
    assert.equal(await probeMedia(await write('ftyp-only.mp4', sample1.subarray(0, 32))), null)
  })

  test('boxes that do not make an ISO-BMFF movie have no metadata: no ftyp first, two moov boxes', async () => {
    // The ftyp box renamed to a free box: the rest is a whole movie, but nothing says it is ISO-BMFF.
    const noFtyp = Buffer.from(sample1)
    noFtyp.write('free', 4, 'latin1')
    assert.equal(await probeMedia(await write('no-ftyp.mp4', noFtyp)), null)
    // Which of two moov boxes a player takes is anyone's guess.
    const moov = sample1.subarray(32, 32 + SAMPLE_1_MOOV_BYTES)
    assert.equal(await probeMedia(await write('two-moovs.mp4', Buffer.concat([sample1, moov]))), null)
  })

  test('the first 8 bytes tell which files the probe need not open (a keeper sees them as the upload arrives)', async () => {
    // Every file the probe describes passes, whatever follows its first box.
    for (const name of Object.keys(SAMPLE_MEDIA)) assert.equal(mayBeMedia((await readFile(join(FIXTURES, name))).subarray(0, 8)), true, name)
    assert.equal(mayBeMedia(withMoovAtEnd(sample1).subarray(0, 8)), true)
    // What it rules out, the probe describes as nothing.
    const noFtyp = Buffer.from(sample1)
    noFtyp.write('free', 4, 'latin1')
    const ruledOut = {random: randomBytes(100_000), text: Buffer.from('hello, this is not a movie\n'.repeat(1000)), empty: Buffer.alloc(0), short: sample1.subarray(0, 7), 'no-ftyp': noFtyp}
    for (const [name, bytes] of Object.entries(ruledOut)) {
      assert.equal(mayBeMedia(bytes.subarray(0, 8)), false, name)
      assert.equal(await probeMedia(await write(`${name}.ruled-out`, bytes)), null, name)
    }
  })

  test('a damaged moov gives no metadata, and nothing of the file reaches the console (the keeper\'s log)', async () => {
    // The movie header's box type becomes an escape sequence, which mp4box would quote.
    const damaged = Buffer.from(sample1)
    assert.equal(damaged.toString('latin1', 44, 48), 'mvhd')
    damaged.write('\u001b[2J', 44, 'latin1')
    const path = await write('damaged.mp4', damaged)
    const printed: unknown[][] = []
    const methods = ['debug', 'info', 'log', 'warn', 'error'] as const
    const saved = methods.map((method) => console[method])
    for (const method of methods) console[method] = (...args: unknown[]) => printed.push(args)
    let media
    try {
      media = await probeMedia(path)
    } finally {
      methods.forEach((method, index) => (console[method] = saved[index]!))
    }

    assert.equal(media, null)
    assert.deepEqual(printed, [])
  })

  test('a file cut short has no metadata, even when its moov is whole', async () => {
    assert.equal(await probeMedia(await write('half.mp4', sample1.subarray(0, sample1.length >> 1))), null)
    assert.equal(await probeMedia(await write('one-byte-short.mp4', sample1.subarray(0, -1))), null)
    const moved = withMoovAtEnd(sample1)
    assert.equal(await probeMedia(await write('moov-cut.mp4', moved.subarray(0, -100))), null)
    // Bytes after the last box are no box either.
    assert.equal(await probeMedia(await write('trailing.mp4', Buffer.concat([sample1, Buffer.from('junk')]))), null)
  })

  test('a moov over the limit, or more boxes than the limit, give no metadata', async () => {
    const path = join(FIXTURES, 'sample_1.mp4')
    assert.equal((await probeMedia(path, {...PROBE_LIMITS, maxMoovBytes: SAMPLE_1_MOOV_BYTES}))?.durationSeconds, 30.527)
    assert.equal(await probeMedia(path, {...PROBE_LIMITS, maxMoovBytes: SAMPLE_1_MOOV_BYTES - 1}), null)
    assert.equal((await probeMedia(path, {...PROBE_LIMITS, maxBoxes: 4}))?.durationSeconds, 30.527)
    assert.equal(await probeMedia(path, {...PROBE_LIMITS, maxBoxes: 3}), null)
  })

  test('a 5 GiB media data box (64-bit size) before moov is skipped by its header, not read', async () => {
    // ftyp, then an mdat of 5 GiB that the file holds as a hole, then the sample's moov: the probe
    // must seek over the mdat to find moov (its chunk offsets are wrong, which describing ignores).
    const mdatSize = 5 * 1024 ** 3
    const mdatHeader = Buffer.alloc(16)
    mdatHeader.writeUInt32BE(1, 0)
    mdatHeader.write('mdat', 4, 'latin1')
    mdatHeader.writeBigUInt64BE(BigInt(mdatSize), 8)
    const path = join(dir, 'huge.mp4')
    const file = await open(path, 'w')
    try {
      await file.write(sample1, 0, 32, 0)
      await file.write(mdatHeader, 0, 16, 32)
      await file.write(sample1, 32, SAMPLE_1_MOOV_BYTES, 32 + mdatSize)
    } finally {
      await file.close()
    }

    const media = await probeMedia(path)
    assert.equal(media?.fastStart, false)
    assert.equal(media?.durationSeconds, 30.527)
    assert.equal(media?.bitrate, Math.round(((32 + mdatSize + SAMPLE_1_MOOV_BYTES) * 8) / 30.527))
    await rm(path)
  })
})
