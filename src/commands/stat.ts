import {Args} from '@oclif/core'

import {DfsCommand, caFlag, formatBytes, formatTable, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'
import type {MediaInfo} from '../lib/protocol.js'

export default class StatCommand extends DfsCommand {
  static override summary = "Show one file's size, sha256, health, where its replicas are (keeper and zone), and for an mp4 its duration, resolution, codecs and bitrate."
  static override examples = ['<%= config.bin %> stat video.mp4', '<%= config.bin %> stat video.mp4 --json']
  static override args = {name: Args.string({description: 'name of a stored file', required: true})}
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(StatCommand)
    const {statFile} = await import('../roles/client/admin.js')
    const file = await statFile(await this.master(flags), args.name)
    if (flags.json) return this.printJson(file)
    const alive = file.replicas.filter((replica) => replica.alive && !replica.draining).length
    const draining = file.replicas.filter((replica) => replica.alive && replica.draining).length
    this.log(`name:     ${file.name}`)
    this.log(`size:     ${formatBytes(file.size)} (${file.size} bytes)`)
    this.log(`sha256:   ${file.sha256}`)
    this.log(`created:  ${file.createdAt}`)
    this.log(`replicas: ${alive} alive of ${file.target} wanted${draining > 0 ? `, and ${draining} on draining keepers` : ''}`)
    this.log(`zones:    ${new Set(file.replicas.filter((replica) => replica.alive && !replica.draining).map((replica) => replica.zone)).size}`)
    this.log(`health:   ${file.health.toUpperCase()}`)
    if (file.media) for (const line of mediaLines(file.media)) this.log(line)
    if (file.replicas.length > 0) {
      const rows = file.replicas.map((replica) => ({
        keeper: replica.keeper,
        zone: replica.zone,
        url: replica.url,
        alive: replica.alive ? (replica.draining ? 'draining' : 'yes') : 'no',
      }))
      this.log('\n' + formatTable(rows, ['keeper', 'zone', 'url', 'alive']))
    }
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
