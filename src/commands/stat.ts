import {Args} from '@oclif/core'

import {DfsCommand, caFlag, formatBytes, formatTable, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class StatCommand extends DfsCommand {
  static override summary = "Show one file's size, sha256, health and where its replicas are (keeper and zone)."
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
