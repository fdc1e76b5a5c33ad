/**
 * Imported first by the worker: emscripten binds `console` when its module loads and
 * prints its own aborts ("Aborted(...)"); what a codec did wrong reaches the host as a
 * reason, so the worker prints nothing to the pipeline's output.
 */
const quiet = () => undefined;
console.log = quiet;
console.warn = quiet;
console.error = quiet;
