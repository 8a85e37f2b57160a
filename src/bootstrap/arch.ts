export async function bootstrapArch(_o: unknown): Promise<void> { throw new Error("not yet"); }
