import { defineConfig } from "vite";

// The console is served by Atrium under /console (src/api/console_routes.cpp) from files compiled into the binary
// (cmake/embed_console.py). Hashed names under assets/ are cached for a year; index.html is revalidated.
export default defineConfig({
  base: "/console/",
  build: {
    target: "es2022",
    assetsInlineLimit: 0, // no data: URLs for scripts; the CSP allows only the console's own files
    modulePreload: { polyfill: false }, // no inline module preload script
    reportCompressedSize: false,
    sourcemap: false,
  },
});
