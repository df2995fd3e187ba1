"""Two hundred well separated topics: questions about them and their paraphrases."""


def _words(text: str) -> list[str]:
    return text.split()


COUNTRIES = _words(
    """Argentina Australia Austria Belgium Bolivia Brazil Bulgaria Cambodia Canada Chile
China Colombia Croatia Cuba Denmark Ecuador Egypt Estonia Ethiopia Finland France Germany Ghana
Greece
Hungary Iceland India Indonesia Iran Ireland Israel Italy Jamaica Japan Kenya Laos Latvia Lebanon
Lithuania Madagascar Malaysia Mexico Mongolia Morocco Nepal Nigeria Norway Pakistan Peru Poland
Portugal Romania Senegal Spain Sweden Switzerland Thailand Turkey Uruguay Vietnam"""
)
ANIMALS = _words(
    """aardvarks albatrosses alligators antelopes armadillos badgers beavers bison buffalo
camels chameleons cheetahs chimpanzees cobras crocodiles dolphins eagles elephants falcons
flamingos giraffes gorillas hedgehogs hippopotamuses hyenas jellyfish kangaroos koalas lemurs
leopards lobsters meerkats moose octopuses ostriches otters owls pandas pelicans penguins
porcupines raccoons rhinoceroses salmon scorpions seahorses sharks sloths squirrels tortoises
walruses"""
)
INSTRUMENTS = _words(
    """accordions bagpipes banjos bassoons cellos clarinets cymbals didgeridoos drums
flutes guitars harmonicas harps harpsichords oboes organs pianos saxophones sitars trombones
trumpets tubas ukuleles violins xylophones"""
)
SPORTS = _words(
    """archery badminton baseball basketball bowling boxing cricket curling cycling fencing
golf gymnastics handball hockey judo karate lacrosse polo rowing rugby sailing skateboarding
skiing snowboarding soccer squash surfing swimming tennis volleyball"""
)
FOODS = _words(
    """almonds apricots artichokes asparagus avocados bananas blueberries broccoli cabbage
carrots cauliflower cherries chestnuts coconuts cranberries cucumbers eggplants figs garlic
grapefruit kiwis lemons lentils mangoes mushrooms olives onions papayas peanuts pineapples
pistachios pomegranates pumpkins radishes spinach"""
)
TOPICS = (COUNTRIES + ANIMALS + INSTRUMENTS + SPORTS + FOODS)[:200]
assert len(set(TOPICS)) == 200, len(set(TOPICS))


def question(topic: str) -> str:
    return f"What are some interesting facts about {topic}?"


def paraphrase(topic: str) -> str:
    return f"Tell me some interesting facts about {topic}."


def answer(topic: str) -> str:
    return f"Here are some facts about {topic}."
