export * from "./constants.js";
export * from "./identify.js";
export * from "./messages.js";
