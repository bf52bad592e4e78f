// @google-cloud/compute in a universe, configured as its documentation says: universeDomain and a
// key file (the CA comes from NODE_EXTRA_CA_CERTS). Creates an instance, waits for its operation
// and prints the instance's status and selfLink as JSON.
// usage: node universe_insert.js UNIVERSE KEY_FILE PROJECT ZONE NAME
const {InstancesClient, ZoneOperationsClient} = require('@google-cloud/compute');

async function main() {
  const [universe, keyFile, project, zone, name] = process.argv.slice(2);
  const options = {universeDomain: universe, keyFilename: keyFile, fallback: 'rest'};
  const instances = new InstancesClient(options);
  const operations = new ZoneOperationsClient(options);
  const [response] = await instances.insert({project, zone, instanceResource: {
    name, machineType: `zones/${zone}/machineTypes/e2-small`,
    disks: [{boot: true, autoDelete: true,
             initializeParams: {sourceImage: 'projects/debian-cloud/global/images/family/debian-12'}}],
    networkInterfaces: [{network: 'global/networks/default'}]}});
  let operation = response.latestResponse;
  while (operation.status !== 'DONE') {
    [operation] = await operations.wait({project, zone, operation: operation.name});
  }
  const [vm] = await instances.get({project, zone, instance: name});
  console.log(JSON.stringify({status: vm.status, selfLink: vm.selfLink}));
}

main().catch((e) => { console.error(e); process.exit(1); });
