import { storeKinds } from "../support/stores.js";
import { groupsSuite } from "./groups.case.js";

for (const [kind, makeStores] of Object.entries(storeKinds)) groupsSuite(kind, makeStores);
