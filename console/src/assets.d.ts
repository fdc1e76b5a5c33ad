/** CSS imports: esbuild bundles them into `main.css`. */
declare module '*.css';
