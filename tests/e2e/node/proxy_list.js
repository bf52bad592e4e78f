// google-auth-library with nothing but a key file: it signs in at Google's fixed token endpoint and
// calls compute.googleapis.com, both reached through HTTPS_PROXY (the CA from NODE_EXTRA_CA_CERTS).
// (@google-cloud/compute's REST transport cannot be used so: google-gax hands gaxios an agent of its
// own, and gaxios then skips HTTPS_PROXY.) Prints the instances' names and selfLinks as JSON.
// usage: node proxy_list.js KEY_FILE PROJECT ZONE
const {GoogleAuth} = require('google-auth-library');

async function main() {
  const [keyFile, project, zone] = process.argv.slice(2);
  const auth = new GoogleAuth({keyFilename: keyFile, scopes: ['https://www.googleapis.com/auth/cloud-platform']});
  const client = await auth.getClient();
  const url = `https://compute.googleapis.com/compute/v1/projects/${project}/zones/${zone}/instances`;
  const {data} = await client.request({url});
  console.log(JSON.stringify((data.items || []).map((vm) => ({name: vm.name, selfLink: vm.selfLink}))));
}

main().catch((e) => { console.error(e); process.exit(1); });
