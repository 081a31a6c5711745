import { describe, expect, it } from "vitest";
import { rateLimitGroup } from "../../src/console/client-address.js";

describe("rateLimitGroup", () => {
  it.each([
    ["203.0.113.7", "203.0.113.7"],
    ["::ffff:203.0.113.7", "203.0.113.7"],
    ["::FFFF:203.0.113.7", "203.0.113.7"],
    ["2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:0db8:0001:0002::/64"],
    ["2001:db8:1:2::1", "2001:0db8:0001:0002::/64"],
    ["2001:DB8:1:2:ffff::", "2001:0db8:0001:0002::/64"],
    ["2001:db8::1", "2001:0db8:0000:0000::/64"],
    ["::1", "0000:0000:0000:0000::/64"],
  ])("counts %s as %s", (address, group) => {
    expect(rateLimitGroup(address)).toBe(group);
  });

  it("puts every address of one /64 in one group, and the next /64 in another", () => {
    expect(rateLimitGroup("2001:db8:1:2::a")).toBe(rateLimitGroup("2001:db8:1:2:1:2:3:4"));
    expect(rateLimitGroup("2001:db8:1:3::a")).not.toBe(rateLimitGroup("2001:db8:1:2::a"));
  });
});
