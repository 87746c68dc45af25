import {Args} from '@oclif/core'

import {DfsCommand, caFlag, formatBytes, formatTable, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class DuCommand extends DfsCommand {
  static override summary = 'Space taken by stored files: logical bytes, and bytes with every alive replica counted.'
  static override description = `PATTERN selects names as ls does (a prefix, or a glob). One row per file or folder directly in the folder the pattern starts in (a folder's row holds everything below it), then the total.`

  static override examples = ['<%= config.bin %> du', '<%= config.bin %> du videos/', "<%= config.bin %> du 'videos/**.mp4' --json"]
  static override args = {pattern: Args.string({description: 'a prefix, or a glob (*, ?, **) of names', required: false})}
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(DuCommand)
    const {diskUsage} = await import('../roles/client/admin.js')
    const usage = await diskUsage(await this.master(flags), args.pattern)
    if (flags.json) return this.printJson(usage)
    const row = (used: {name: string; files: number; bytes: number; replicaBytes: number}, name: string) => ({
      bytes: formatBytes(used.bytes),
      'with replicas': formatBytes(used.replicaBytes),
      files: used.files,
      name,
    })
    const rows = [...usage.entries.map((entry) => row(entry, entry.name)), row(usage.total, `total${args.pattern ? ` of ${args.pattern}` : ''}`)]
    this.log(formatTable(rows, ['bytes', 'with replicas', 'files', 'name']))
  }
}
