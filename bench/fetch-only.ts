// The Hub bench's network floor: fetch from the Hub the byte ranges a patch reads (each shard's header, the target
// tensors of both models and the adapter's weights) and throw them away, with no compute. Run in its own process,
// as the patch is, so both meet the same server. Prints one JSON line.
// Usage: fetch-only.ts <adapter> <base> <aligned> [streams]; HF_ENDPOINT and HF_TOKEN say which Hub.
// Uses plain fetch, not the project's code, so it measures the same thing before and after any change to src/.

const [adapter, base, aligned, streamsArg = "4"] = process.argv.slice(2) as [string, string, string, string?];
const hub = process.env.HF_ENDPOINT ?? "http://127.0.0.1";
const headers: Record<string, string> = process.env.HF_TOKEN ? { Authorization: `Bearer ${process.env.HF_TOKEN}` } : {};
const streams = Number(streamsArg);
/** The tensors the bench's adapter adapts (bench/llama3-checkpoint.ts: q_proj and v_proj of every layer). */
const TARGET = /\.self_attn\.(q_proj|v_proj)\.weight$/;

let bytes = 0;
const url = (repo: string, path: string) => `${hub}/${repo}/resolve/main/${path}`;

/** Fetches `[start, end)` of a file and drains the body without keeping it. */
async function drain(target: string, start: number, end: number): Promise<void> {
  const response = await fetch(target, { headers: { ...headers, Range: `bytes=${start}-${end - 1}` } });
  if (response.status !== 206) throw new Error(`${target}: HTTP ${response.status} for a range request`);
  for await (const chunk of response.body!) bytes += (chunk as Uint8Array).byteLength;
}

async function fetchBytes(target: string, start: number, end: number): Promise<Uint8Array> {
  const response = await fetch(target, { headers: { ...headers, Range: `bytes=${start}-${end - 1}` } });
  if (response.status !== 206) throw new Error(`${target}: HTTP ${response.status} for a range request`);
  const data = new Uint8Array(await response.arrayBuffer());
  bytes += data.byteLength;
  return data;
}

/** A safetensors header as the patch reads it: the 8-byte length, then the JSON. Returns each tensor's absolute range. */
async function headerOf(target: string): Promise<Array<{ name: string; start: number; end: number }>> {
  const prefix = await fetchBytes(target, 0, 8);
  const length = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  const json = JSON.parse(new TextDecoder().decode(await fetchBytes(target, 8, 8 + length))) as Record<string, { data_offsets?: [number, number] }>;
  return Object.entries(json).flatMap(([name, entry]) =>
    name === "__metadata__" || !entry.data_offsets ? [] : [{ name, start: 8 + length + entry.data_offsets[0], end: 8 + length + entry.data_offsets[1] }],
  );
}

/** The weight files of a model repo: the shard index's files, or model.safetensors. */
async function weightFiles(repo: string): Promise<string[]> {
  const index = await fetch(url(repo, "model.safetensors.index.json"), { headers });
  if (index.status === 404) {
    await index.arrayBuffer();
    return ["model.safetensors"];
  }
  const { weight_map } = (await index.json()) as { weight_map: Record<string, string> };
  return [...new Set(Object.values(weight_map))];
}

const started = performance.now();
type Range = { target: string; start: number; end: number };
const targetsOf = async (repo: string): Promise<Range[]> => {
  const ranges: Range[] = [];
  for (const file of await weightFiles(repo)) {
    for (const tensor of await headerOf(url(repo, file))) if (TARGET.test(tensor.name)) ranges.push({ target: url(repo, file), ...tensor });
  }
  return ranges;
};
const [baseRanges, alignedRanges] = [await targetsOf(base), await targetsOf(aligned)];
const adapterWeights = url(adapter, "adapter_model.safetensors");
const adapterTensors = await headerOf(adapterWeights);
// The adapter first (a patch reads its factors with each module), then base and aligned interleaved module by module.
const ordered: Range[] = adapterTensors.length > 0 ? [{ target: adapterWeights, start: adapterTensors[0]!.start, end: adapterTensors.at(-1)!.end }] : [];
baseRanges.forEach((range, i) => ordered.push(range, ...(alignedRanges[i] ? [alignedRanges[i]] : [])));
ordered.push(...alignedRanges.slice(baseRanges.length));
let next = 0;
await Promise.all(
  Array.from({ length: streams }, async () => {
    while (next < ordered.length) {
      const range = ordered[next++]!;
      await drain(range.target, range.start, range.end);
    }
  }),
);
const wallMs = performance.now() - started;
const usage = process.resourceUsage();
process.stdout.write(`${JSON.stringify({ wallMs, cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000, bytes, ranges: ordered.length, streams, maxRssBytes: usage.maxRSS * 1024 })}\n`);
