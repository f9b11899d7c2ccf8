import { create } from "@bufbuild/protobuf";
import { KeyEventSchema, KeyEventType } from "@latchkey/proto";
import { expect, it } from "vitest";
import { createMemoryKeyEventBus } from "./memory-key-event-bus.js";

it("reports an event its subscriber failed to apply as lost, and keeps delivering", async () => {
  const bus = createMemoryKeyEventBus();
  const gaps: Array<{ afterSequence: number; firstAvailable: number }> = [];
  const applied: number[] = [];
  await bus.subscribe({
    onEvent: ({ sequence }) => {
      if (sequence === 1) throw new Error("cannot apply");
      applied.push(sequence);
    },
    onGap: (gap) => void gaps.push(gap),
  });
  const event = create(KeyEventSchema, { type: KeyEventType.REVOKED, keyId: "key_a", teamId: "team_a" });
  await bus.publish(event, "1");
  await bus.publish(event, "2");
  await new Promise((resolve) => setTimeout(resolve, 10));
  expect(gaps).toEqual([{ afterSequence: 1, firstAvailable: 2 }]);
  expect(applied).toEqual([2]);
  await bus.close();
});
