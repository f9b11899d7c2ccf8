// A package as seed 002 writes one: its code reads STRIPE_SECRET_KEY from the context, and never
// sees the keychain secret. It lists a few customers from the Stripe API (STRIPE_API_BASE points
// it at another server in tests and demos).
export default async function (context) {
  const apiKey = context.keychain.key("STRIPE_SECRET_KEY");
  const base = process.env.STRIPE_API_BASE ?? "https://api.stripe.com";
  const response = await fetch(`${base}/v1/customers?limit=3`, {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  const body = await response.json();
  return { stripeStatus: response.status, customers: (body.data ?? []).map((customer) => customer.id) };
}
