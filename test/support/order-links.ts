import type { CustomerFiling } from "../../src/store/customer-index.js";
import { StoreKeys } from "../../src/store/keys.js";

/**
 * A customer filing with no address and no erasure, for tests that link a purchase to its order
 * (OrderStore.linkPurchase) without a purchase at hand.
 */
export function noAddresses(prefix: string): CustomerFiling {
  return {
    customerId: "cus-no-address",
    erasureKey: new StoreKeys(prefix).erasedCustomerGlobal("never-erased"),
    buckets: [],
    entries: [],
    purchasedAt: 0,
    keepMs: 86_400_000,
  };
}
