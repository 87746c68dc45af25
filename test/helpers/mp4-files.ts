// The mp4 samples of test/fixtures as a keeper must describe them, and test files made from them
// by rearranging their top-level boxes in memory: the same movie with its `moov` box at the end
// (not "fast start"), still playable.

// What the samples are (mp4box 2.4.1 reads the same; sample_1's movie header says 18316/600 s).
export const SAMPLE_MEDIA = {
  'sample_1.mp4': {container: 'mp4', durationSeconds: 30.527, width: 480, height: 270, videoCodec: 'avc1.42c01e', audioCodec: 'mp4a.40.2', bitrate: 411_445, fastStart: true},
  'sample_2.mp4': {container: 'mp4', durationSeconds: 9.577, width: 898, height: 506, videoCodec: 'avc1.64001f', audioCodec: null, bitrate: 1_110_552, fastStart: true},
  'sample_3.mp4': {container: 'mp4', durationSeconds: 27.29, width: 596, height: 336, videoCodec: 'avc1.64001e', audioCodec: 'mp4a.40.2', bitrate: 1_040_495, fastStart: true},
} as const

interface Box {
  type: string
  start: number
  end: number
}

/** The boxes directly inside bytes[from, to) (32-bit sizes: the samples use no other). */
function boxesIn(bytes: Buffer, from: number, to: number): Box[] {
  const boxes: Box[] = []
  for (let start = from; start < to; ) {
    const size = bytes.readUInt32BE(start)
    if (size < 8 || start + size > to) throw new Error(`a box at ${start} of size ${size} does not fit in [${from}, ${to})`)
    boxes.push({type: bytes.toString('latin1', start + 4, start + 8), start, end: start + size})
    start += size
  }

  return boxes
}

// The boxes on the way from moov to each track's chunk offset tables.
const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl'])

/** Adds `delta` to every chunk offset (stco, co64) under `box`, in place. */
function shiftChunkOffsets(bytes: Buffer, box: Box, delta: number): void {
  for (const child of boxesIn(bytes, box.start + 8, box.end)) {
    if (CONTAINERS.has(child.type)) shiftChunkOffsets(bytes, child, delta)
    // A full box: version and flags (4 bytes), then the entry count and the entries.
    const count = child.type === 'stco' || child.type === 'co64' ? bytes.readUInt32BE(child.start + 12) : 0
    for (let index = 0; index < count; index++) {
      if (child.type === 'stco') {
        const at = child.start + 16 + index * 4
        bytes.writeUInt32BE(bytes.readUInt32BE(at) + delta, at)
      } else {
        const at = child.start + 16 + index * 8
        bytes.writeBigUInt64BE(bytes.readBigUInt64BE(at) + BigInt(delta), at)
      }
    }
  }
}

/**
 * The same mp4 with its `moov` box moved after the media data, as encoders write it when they do
 * not "fast start": the media data moves up by the size of moov, so every chunk offset is shifted.
 */
export function withMoovAtEnd(mp4: Buffer): Buffer {
  const boxes = boxesIn(mp4, 0, mp4.length)
  const moov = boxes.find((box) => box.type === 'moov')
  if (!moov) throw new Error('no moov box')
  const firstMdat = boxes.find((box) => box.type === 'mdat')
  if (!firstMdat || firstMdat.start < moov.start) throw new Error('moov is not before the media data')
  const moved = Buffer.from(mp4.subarray(moov.start, moov.end))
  shiftChunkOffsets(moved, {type: 'moov', start: 0, end: moved.length}, -moved.length)
  const rest = boxes.filter((box) => box !== moov).map((box) => mp4.subarray(box.start, box.end))
  return Buffer.concat([...rest, moved])
}

/** The types of the top-level boxes, in order. */
export function topLevelTypes(mp4: Buffer): string[] {
  return boxesIn(mp4, 0, mp4.length).map((box) => box.type)
}
