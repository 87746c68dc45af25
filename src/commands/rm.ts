import {Args, Flags} from '@oclif/core'

import {DfsCommand, caFlag, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class RmCommand extends DfsCommand {
  static override summary = 'Delete files: each record goes at once, every keeper deletes its replica.'
  static override description = `With --recursive each NAME is a folder ("videos" means "videos/", never "videos.mp4") and every file under it is deleted. Each name succeeds or fails on its own; every one is reported, and if any of several failed the command exits 10.`

  static override examples = ['<%= config.bin %> rm video.mp4', '<%= config.bin %> rm a.mp4 b.mp4', '<%= config.bin %> rm --recursive videos/2024/']
  static override strict = false
  static override args = {name: Args.string({description: 'names of stored files (folders, with --recursive)', required: true})}
  static override flags = {
    master: masterFlag,
    token: tokenFlag,
    ca: caFlag,
    recursive: Flags.boolean({char: 'r', description: 'delete every file under each named folder', default: false}),
    json: jsonFlag,
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(RmCommand)
    const names = argv as string[]
    const {removeFiles} = await import('../roles/client/admin.js')
    const outcomes = await removeFiles(await this.master(flags), names, {recursive: flags.recursive})
    this.reportEach(outcomes, {json: flags.json, subject: (index) => ({name: outcomes[index]!.name}), entry: (result) => result, line: (result) => `removed ${result.name}`, what: 'removals'})
  }
}
