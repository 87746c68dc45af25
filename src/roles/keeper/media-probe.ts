import {open, type FileHandle} from 'node:fs/promises'

import type {Movie} from 'mp4box'

import type {MediaInfo} from '../../lib/protocol.js'

/** Limits on the work one stored file may cost: beyond them it simply gets no metadata. */
export interface ProbeLimits {
  /** The largest `moov` box read into memory (it holds every sample's table: ~1 MiB per hour of video). */
  maxMoovBytes: number
  /** The most top-level boxes walked (a fragmented mp4 has two per fragment). */
  maxBoxes: number
}

export const PROBE_LIMITS: ProbeLimits = {maxMoovBytes: 16 * 1024 * 1024, maxBoxes: 100_000}

// The `ftyp` box names the brand of the file; the brands that mean something else than mp4.
const CONTAINER_OF_BRAND: Record<string, string> = {'qt  ': 'mov', 'M4A ': 'm4a', 'M4B ': 'm4a', 'M4P ': 'm4a', 'M4V ': 'm4v'}
const MAX_FTYP_BYTES = 4096
const BOX_TYPE = /^[\x20-\x7e]{4}$/
const CODEC = /^[A-Za-z0-9._+-]{1,64}$/

interface TopBox {
  type: string
  offset: number
  size: number
}

/**
 * Reads what a stored file is if it is an mp4 (or other ISO-BMFF) file: duration, resolution,
 * codecs, bitrate, and whether `moov` comes before the media data. Only box headers are read, and
 * then `ftyp` and `moov` (mp4box parses those): never the media data, so the cost does not grow
 * with the file. Anything else — not ISO-BMFF, cut short (its boxes do not end where the file
 * does), no `moov`, one over the limits, one mp4box cannot read — is null, never an error.
 */
export async function probeMedia(path: string, limits: ProbeLimits = PROBE_LIMITS): Promise<MediaInfo | null> {
  let file: FileHandle | undefined
  try {
    file = await open(path, 'r')
    const {size} = await file.stat()
    const boxes = await topLevelBoxes(file, size, limits.maxBoxes)
    const ftyp = boxes?.[0]
    if (!ftyp || ftyp.type !== 'ftyp' || ftyp.size > MAX_FTYP_BYTES) return null
    const moovs = boxes.filter((box) => box.type === 'moov')
    const moov = moovs[0]
    if (moovs.length !== 1 || !moov || moov.size > limits.maxMoovBytes) return null
    // mp4box sees ftyp and moov side by side: the media data between them is not needed to describe the file.
    const head = Buffer.concat([await readBox(file, ftyp), await readBox(file, moov)])
    const movie = await parseMovie(head)
    if (!movie || movie.tracks.length === 0) return null
    const firstMdat = boxes.find((box) => box.type === 'mdat')
    return mediaOf(movie, {size, brand: head.toString('latin1', 8, 12), fastStart: !firstMdat || moov.offset < firstMdat.offset})
  } catch {
    return null
  } finally {
    await file?.close().catch(() => {})
  }
}

/**
 * Whether a file whose first bytes are `head` (at least its first 8, or all of a shorter file) can
 * be one probeMedia describes: only a file whose first box is `ftyp` can. false spares a stored
 * file the probe's open, stat, read and close (a keeper's every upload).
 */
export function mayBeMedia(head: Buffer): boolean {
  return head.length >= 8 && head.toString('latin1', 4, 8) === 'ftyp'
}

/**
 * The file's top-level boxes, from their headers alone; undefined unless they tile the file
 * exactly (a file cut short, or one that is not ISO-BMFF, does not).
 */
async function topLevelBoxes(file: FileHandle, size: number, maxBoxes: number): Promise<TopBox[] | undefined> {
  const boxes: TopBox[] = []
  const header = Buffer.alloc(16)
  for (let offset = 0; offset < size; ) {
    if (boxes.length >= maxBoxes || size - offset < 8) return undefined
    const {bytesRead} = await file.read(header, 0, 16, offset)
    const type = header.toString('latin1', 4, 8)
    if (!BOX_TYPE.test(type)) return undefined
    const small = header.readUInt32BE(0)
    let boxSize: number
    let headerSize = 8
    if (small === 1) {
      if (bytesRead < 16) return undefined
      boxSize = Number(header.readBigUInt64BE(8))
      headerSize = 16
    } else {
      // 0: the box runs to the end of the file.
      boxSize = small === 0 ? size - offset : small
    }

    if (boxSize < headerSize || boxSize > size - offset) return undefined
    boxes.push({type, offset, size: boxSize})
    offset += boxSize
  }

  return boxes
}

async function readBox(file: FileHandle, box: TopBox): Promise<Buffer> {
  const bytes = Buffer.alloc(box.size)
  const {bytesRead} = await file.read(bytes, 0, box.size, box.offset)
  if (bytesRead !== box.size) throw new Error('the file changed while it was read')
  return bytes
}

/** mp4box's description of the movie in `head` (ftyp and moov), or undefined if it cannot read one. */
async function parseMovie(head: Buffer): Promise<Movie | undefined> {
  // Loaded here, by the first file that looks like an mp4, not at every keeper's start.
  const {createFile, MP4BoxBuffer} = await import('mp4box')
  let movie: Movie | undefined
  let failed = false
  const parser = createFile()
  parser.onReady = (info) => {
    movie = info
  }

  parser.onError = () => {
    failed = true
  }

  silently(() => {
    parser.appendBuffer(MP4BoxBuffer.fromArrayBuffer(head.buffer.slice(head.byteOffset, head.byteOffset + head.length), 0))
    parser.flush()
  })
  return failed ? undefined : movie
}

const CONSOLE_METHODS = ['debug', 'info', 'log', 'warn', 'error'] as const

/**
 * Runs `work` with the console muted. mp4box reports a damaged box on the console, quoting the
 * box's type: bytes of an uploaded file (escape sequences too) would reach the keeper's log raw.
 * Parsing is synchronous, so nothing else can log meanwhile.
 */
function silently(work: () => void): void {
  const saved = CONSOLE_METHODS.map((method) => console[method])
  for (const method of CONSOLE_METHODS) console[method] = () => {}
  try {
    work()
  } finally {
    CONSOLE_METHODS.forEach((method, index) => (console[method] = saved[index]!))
  }
}

function mediaOf(movie: Movie, file: {size: number; brand: string; fastStart: boolean}): MediaInfo {
  const video = movie.videoTracks[0]
  const audio = movie.audioTracks[0]
  // A fragmented file's movie header may say 0; its fragments' total is in mvex/mehd then.
  const fragmented = movie.fragment_duration ? movie.fragment_duration.num / movie.fragment_duration.den : 0
  const seconds = movie.timescale > 0 ? movie.duration / movie.timescale : 0
  const durationSeconds = round(Math.min(1e9, Number.isFinite(seconds) && seconds > 0 ? seconds : Number.isFinite(fragmented) ? fragmented : 0), 3)
  const pixels = (value: number | undefined) => (value !== undefined && Number.isInteger(value) && value >= 0 && value <= 65_535 ? value : null)
  const codec = (value: string | undefined) => {
    const trimmed = value?.trim()
    return trimmed && CODEC.test(trimmed) ? trimmed : null
  }

  return {
    container: CONTAINER_OF_BRAND[file.brand] ?? 'mp4',
    durationSeconds,
    width: video ? pixels(video.video?.width ?? video.track_width) : null,
    height: video ? pixels(video.video?.height ?? video.track_height) : null,
    videoCodec: codec(video?.codec),
    audioCodec: codec(audio?.codec),
    bitrate: durationSeconds > 0 ? Math.min(1e12, Math.round((file.size * 8) / durationSeconds)) : null,
    fastStart: file.fastStart,
  }
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}
