import type {MediaInfo} from '../lib/protocol.js'
import type {CommandIo} from './command-io.js'
import {type CommandSpec, type Parsed, clientSpecs, jsonSpec} from './flag-spec.js'
import {formatBytes, formatTable} from './human-format.js'

export const statSpec = {
  flags: {...clientSpecs, json: jsonSpec},
  args: {name: {description: 'name of a stored file', required: true}},
  strict: true,
} as const satisfies CommandSpec

export async function runStat(io: CommandIo, {args, flags}: Parsed<typeof statSpec>): Promise<void> {
  const {statFile} = await import('../roles/client/admin.js')
  const file = await statFile(await io.master(flags), args.name)
  if (flags.json) return io.printJson(file)
  const alive = file.replicas.filter((replica) => replica.alive && !replica.draining).length
  const draining = file.replicas.filter((replica) => replica.alive && replica.draining).length
  io.log(`name:     ${file.name}`)
  io.log(`size:     ${formatBytes(file.size)} (${file.size} bytes)`)
  io.log(`sha256:   ${file.sha256}`)
  io.log(`created:  ${file.createdAt}`)
  io.log(`replicas: ${alive} alive of ${file.target} wanted${draining > 0 ? `, and ${draining} on draining keepers` : ''}`)
  io.log(`zones:    ${new Set(file.replicas.filter((replica) => replica.alive && !replica.draining).map((replica) => replica.zone)).size}`)
  io.log(`health:   ${file.health.toUpperCase()}`)
  if (file.media) for (const line of mediaLines(file.media)) io.log(line)
  if (file.replicas.length > 0) {
    const rows = file.replicas.map((replica) => ({
      keeper: replica.keeper,
      zone: replica.zone,
      url: replica.url,
      alive: replica.alive ? (replica.draining ? 'draining' : 'yes') : 'no',
    }))
    io.log('\n' + formatTable(rows, ['keeper', 'zone', 'url', 'alive']))
  }
}

/** What a keeper read of an mp4 (or other ISO-BMFF) file, for people. */
function mediaLines(media: MediaInfo): string[] {
  const lines = [`media:    ${media.container}, ${formatSeconds(media.durationSeconds)}${media.bitrate === null ? '' : `, ${formatBitrate(media.bitrate)}`}`]
  if (media.videoCodec !== null || media.width !== null) {
    const size = media.width !== null && media.height !== null ? ` ${media.width}x${media.height}` : ''
    lines.push(`video:    ${media.videoCodec ?? 'unknown codec'}${size}`)
  }

  if (media.audioCodec !== null) lines.push(`audio:    ${media.audioCodec}`)
  if (!media.fastStart) lines.push('moov at end: not fast-start (a browser must fetch the end of the file before it can play it)')
  return lines
}

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(2)} s`
  const whole = Math.round(seconds)
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor((whole % 3600) / 60), whole % 60]
  return `${h > 0 ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(s).padStart(2, '0')}`
}

function formatBitrate(bitsPerSecond: number): string {
  return bitsPerSecond >= 10_000_000 ? `${(bitsPerSecond / 1_000_000).toFixed(1)} Mbit/s` : `${Math.round(bitsPerSecond / 1000)} kbit/s`
}
