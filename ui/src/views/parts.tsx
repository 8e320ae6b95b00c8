/** Small pieces every view uses. */
export function ErrorNote({ error }: { error?: Error }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error.message}
    </p>
  );
}
