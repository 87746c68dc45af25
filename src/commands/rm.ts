import {Args} from '@oclif/core'

import {DfsCommand, caFlag, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class RmCommand extends DfsCommand {
  static override summary = 'Delete a file: its record goes at once, every keeper deletes its replica.'
  static override examples = ['<%= config.bin %> rm video.mp4']
  static override args = {name: Args.string({description: 'name of a stored file', required: true})}
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(RmCommand)
    const {removeFile} = await import('../roles/client/admin.js')
    const removed = await removeFile(await this.master(flags), args.name)
    if (flags.json) return this.printJson(removed)
    this.log(`removed ${removed.name}`)
  }
}
