import { MemoryForge } from "../helpers/memory-forge.js";
import { describeForgeContract, PEOPLE, type ForgeFixture } from "./forge-contract.js";

/** The in-memory forge the bot's unit tests run on: it must behave as the Hub forge does. */
async function memoryFixture(): Promise<ForgeFixture> {
  const forge = new MemoryForge();
  forge.addOrg("acme", ["alice", forge.bot.name]);
  return {
    forge,
    ...PEOPLE,
    createRepo: async (params) => forge.createRepo(params),
    commitToMain: async ({ repo, files }) => forge.commitFiles({ repo, files, author: "alice" }),
    commitToPullRequest: async ({ repo, num, files }) => forge.commitFiles({ repo, files, pullRequest: num, author: "alice" }),
    openDiscussionAs: async (params) => forge.openDiscussionAs(params),
    commentAs: async (params) => forge.commentAs(params),
    async discussion({ repo, num }) {
      const stored = forge.discussionOf(repo, num);
      return { status: stored.status, comments: stored.comments.map(({ id, author, text }) => ({ id, author, text })) };
    },
    close: async () => {},
  };
}

describeForgeContract("the in-memory forge", memoryFixture);
