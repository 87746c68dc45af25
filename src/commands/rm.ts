import {Args, Flags} from '@oclif/core'

import {DfsCommand, caFlag, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class RmCommand extends DfsCommand {
  static override summary = 'Delete files: each record goes at once, every keeper deletes its replica.'
  static override description = `With --recursive each NAME is a folder ("videos" means "videos/", never "videos.mp4") and every file under it is deleted. Each name succeeds or fails on its own; if any failed, the command says how many and exits non-zero.`

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
    const only = names.length === 1 && !flags.recursive ? outcomes[0]! : undefined
    if (only && !only.ok) throw only.error
    if (flags.json) {
      const report = outcomes.map((outcome) => (outcome.ok ? outcome.removed : {name: outcome.name, ...outcome.error.toJSON()}))
      this.printJson(only ? report[0] : report)
    } else {
      for (const outcome of outcomes) if (outcome.ok) this.log(`removed ${outcome.removed.name}`)
    }

    const failed = outcomes.filter((outcome) => !outcome.ok)
    if (!flags.json) for (const outcome of failed) if (!outcome.ok) this.logToStderr(`failed ${outcome.name}: ${outcome.error.message}`)
    if (failed.length > 0) this.fail(`${failed.length} of ${outcomes.length} removals failed`, 1)
  }
}
