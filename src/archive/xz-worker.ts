// Worker side of XzWorkerPool (xz.ts): decode one block per message from a
// shared input buffer into its slice of a shared output buffer, and answer
// with the job id and, on failure, the error message.
import { xzDecodeBlock, type XzBlock } from "./xz.ts";
import { fullJit } from "../util/jit.ts";

fullJit();

declare const self: Worker;

self.onmessage = (ev: MessageEvent<{ id: number; input: Uint8Array; block: XzBlock; out: Uint8Array }>) => {
  const { id, input, block, out } = ev.data;
  try {
    xzDecodeBlock(input, block, out.subarray(block.outOffset, block.outOffset + block.uncompressedSize));
    self.postMessage({ id });
  } catch (e) {
    self.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
};
