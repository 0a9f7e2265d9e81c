"""The curated sound ontology: classes, their role, their captions, and how files map to them.

Each class has a *role*: ``event`` (a short single sound: a moo, a door slam) or ``bed`` (a
continuous ambience that can fill 10 s: rain, a river). Captions come in two forms so that
scenes and instructions read naturally:

- ``sentences``: whole captions for a clip of that class alone ("A cow moos");
- ``phrases``: noun phrases an instruction can name ("a cow mooing" -> "Add a cow mooing",
  "Remove the cow mooing", "Replace the cow mooing with rain falling").

``LABEL_RULES`` maps a source descriptor (a file path, an archive title, a drum-kit
instrument name) to a class with ordered regular expressions: the first match wins, and a
file that matches nothing is left out of the corpus rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EVENT = "event"
BED = "bed"
ROLES = (EVENT, BED)


@dataclass(frozen=True)
class SoundClass:
    name: str
    role: str
    sentences: tuple[str, ...]
    phrases: tuple[str, ...]


def _c(name: str, role: str, sentences: list[str], phrases: list[str]) -> SoundClass:
    return SoundClass(name, role, tuple(sentences), tuple(phrases))


CLASSES: dict[str, SoundClass] = {c.name: c for c in [
    # animals
    _c("cow", EVENT, ["A cow moos", "Cattle are mooing", "A cow lows loudly"], ["a cow mooing", "cattle mooing", "a cow lowing"]),
    _c("sheep", EVENT, ["A sheep bleats", "Sheep are bleating", "A lamb baas"], ["a sheep bleating", "sheep bleating", "a lamb baaing"]),
    _c("horse", EVENT, ["A horse neighs", "A horse whinnies", "A horse snorts and neighs"], ["a horse neighing", "a horse whinnying", "a neighing horse"]),
    _c("pig", EVENT, ["A pig grunts", "A pig squeals", "A pig oinks"], ["a pig grunting", "a pig squealing", "a grunting pig"]),
    _c("goat", EVENT, ["A goat bleats", "A goat cries out"], ["a goat bleating", "a bleating goat"]),
    _c("chicken", EVENT, ["Chickens cluck", "A hen clucks", "Chickens are clucking"], ["chickens clucking", "a hen clucking", "clucking chickens"]),
    _c("camel", EVENT, ["A camel grunts", "A camel groans"], ["a camel grunting", "a groaning camel"]),
    _c("elephant", EVENT, ["An elephant trumpets", "An elephant roars"], ["an elephant trumpeting", "a trumpeting elephant"]),
    _c("lion", EVENT, ["A lion roars", "A big cat growls"], ["a lion roaring", "a roaring lion", "a big cat growling"]),
    _c("dog", EVENT, ["A dog barks", "A dog is barking", "A dog barks twice"], ["a dog barking", "a barking dog"]),
    _c("bird", EVENT, ["A bird calls", "A bird chirps", "A bird sings a short call"], ["a bird calling", "a bird chirping", "a bird call"]),
    _c("peacock", EVENT, ["A peacock calls", "A peacock screams"], ["a peacock calling", "a peacock's cry"]),
    _c("monkey", EVENT, ["Monkeys screech", "A monkey shrieks"], ["monkeys screeching", "a monkey shrieking"]),
    # weather and water
    _c("rain", BED, ["Rain falls", "Rain is pouring down", "Steady rain patters"], ["rain falling", "the rain", "pouring rain"]),
    _c("thunder", EVENT, ["Thunder rumbles", "Thunder cracks in the distance", "A thunderclap booms"], ["thunder rumbling", "a thunderclap", "rumbling thunder"]),
    _c("wind", BED, ["Wind blows", "Strong wind is gusting", "Wind howls"], ["wind blowing", "the wind", "gusting wind"]),
    _c("river", BED, ["A river flows", "Water streams by", "A brook babbles"], ["a river flowing", "streaming water", "a babbling brook"]),
    _c("waterfall", BED, ["A waterfall roars", "Water rushes down a waterfall"], ["a waterfall", "rushing water"]),
    _c("waves", BED, ["Waves crash on the shore", "The sea washes onto a beach"], ["waves crashing", "the surf", "ocean waves"]),
    _c("fire", BED, ["A fire crackles", "Flames crackle and hiss", "A fire is burning"], ["a fire crackling", "crackling flames", "a burning fire"]),
    _c("countryside", BED, ["Birds and insects fill a quiet countryside", "A calm rural ambience with birdsong"], ["the countryside ambience", "birdsong and insects"]),
    _c("water_splash", EVENT, ["Water splashes", "Something splashes into water"], ["water splashing", "a splash"]),
    _c("bubbles", EVENT, ["Bubbles pop and gurgle", "Liquid bubbles"], ["bubbles popping", "gurgling bubbles"]),
    # people
    _c("footsteps", EVENT, ["Footsteps crunch", "Someone walks by", "A person is walking"], ["footsteps", "someone walking", "walking footsteps"]),
    _c("male_speech", EVENT, ["A man speaks", "A man is talking", "A male voice says something"], ["a man speaking", "a man talking", "a male voice"]),
    _c("female_speech", EVENT, ["A woman speaks", "A woman is talking", "A female voice says something"], ["a woman speaking", "a woman talking", "a female voice"]),
    _c("male_shout", EVENT, ["A man shouts", "A man calls out", "A man yells a command"], ["a man shouting", "a man calling out", "a man yelling"]),
    _c("female_shout", EVENT, ["A woman calls out", "A woman shouts", "A woman exclaims"], ["a woman calling out", "a woman shouting", "a woman exclaiming"]),
    _c("scream", EVENT, ["A person screams", "Someone cries out in pain", "A man groans and screams"], ["a scream", "someone crying out in pain", "a person screaming"]),
    _c("applause", EVENT, ["An audience applauds", "People clap and cheer", "Applause from a crowd"], ["applause", "a crowd clapping", "an audience applauding"]),
    _c("crowd", BED, ["A crowd murmurs and cheers", "A large crowd chatters", "People cheer in a stadium"], ["a crowd cheering", "a murmuring crowd", "crowd noise"]),
    # work and tools
    _c("saw", EVENT, ["Someone saws wood", "A saw cuts through wood", "A handsaw rasps"], ["a saw cutting wood", "sawing", "a handsaw"]),
    _c("hammer", EVENT, ["A hammer strikes", "Someone hammers on metal", "Hammering on an anvil"], ["a hammer striking", "hammering", "a hammer on an anvil"]),
    _c("axe", EVENT, ["An axe chops wood", "Someone chops a tree", "Wood is being chopped"], ["an axe chopping wood", "wood chopping", "chopping"]),
    _c("pickaxe", EVENT, ["A pickaxe strikes stone", "Someone digs at rock with a pick"], ["a pickaxe striking stone", "a pick hitting rock"]),
    _c("power_saw", EVENT, ["A chainsaw roars", "A circular saw whines through wood"], ["a chainsaw", "a power saw cutting", "a circular saw"]),
    _c("jackhammer", EVENT, ["A jackhammer rattles", "A pneumatic drill pounds"], ["a jackhammer", "a pneumatic drill"]),
    _c("tree_fall", EVENT, ["A tree creaks and crashes down", "A tree falls"], ["a tree falling", "a falling tree"]),
    _c("digging", EVENT, ["Someone digs in soil", "A hoe scrapes the earth", "Rustling of leaves and soil"], ["digging", "a hoe scraping soil", "rustling leaves"]),
    # impacts and weapons
    _c("sword", EVENT, ["Swords clash", "Metal blades clang together", "A sword strikes"], ["swords clashing", "clanging blades", "a sword strike"]),
    _c("arrow", EVENT, ["An arrow whooshes past and hits", "An arrow thuds into a target", "Arrows fly"], ["an arrow hitting", "an arrow whooshing", "flying arrows"]),
    _c("whoosh", EVENT, ["Something whooshes through the air", "A swing swishes"], ["a whoosh", "a swish through the air"]),
    _c("explosion", EVENT, ["An explosion booms", "Something explodes", "A loud blast"], ["an explosion", "a loud blast", "a booming explosion"]),
    _c("crash", EVENT, ["Something crashes", "Debris crashes down", "A heavy crash and rumble"], ["a crash", "crashing debris", "a heavy crash"]),
    _c("gunshot", EVENT, ["A gun fires", "A musket shot rings out"], ["a gunshot", "a musket shot"]),
    _c("impact", EVENT, ["Something thuds", "A heavy thump", "An object hits the ground"], ["a thud", "a heavy thump", "an impact"]),
    _c("gate", EVENT, ["A heavy gate creaks and closes", "A stone door grinds open"], ["a gate closing", "a creaking gate", "a grinding stone door"]),
    _c("door", EVENT, ["A door opens", "A door shuts"], ["a door opening", "a door shutting"]),
    # vehicles and machines
    _c("train", EVENT, ["A train passes", "A train departs with a horn", "A locomotive chugs away"], ["a train passing", "a departing train", "a locomotive"]),
    _c("horn", EVENT, ["A horn honks", "A ship's horn blares", "A car horn beeps"], ["a horn honking", "a ship's horn", "a car horn"]),
    _c("aircraft", EVENT, ["A jet takes off", "An airplane roars overhead", "A propeller plane starts up"], ["a jet taking off", "an airplane", "a propeller plane"]),
    _c("helicopter", EVENT, ["A helicopter flies by", "Helicopter rotors thump"], ["a helicopter", "thumping helicopter rotors"]),
    _c("engine", EVENT, ["An engine starts and pulls away", "A bus starts up and drives off", "A truck engine revs"], ["an engine starting", "a bus pulling away", "a revving engine"]),
    _c("traffic", BED, ["Traffic passes on a busy road", "Cars drive by steadily", "City traffic hums"], ["traffic", "cars driving by", "city traffic"]),
    _c("machinery", BED, ["Machinery hums and clanks", "A factory machine runs", "Industrial machines rumble"], ["machinery running", "a humming machine", "industrial noise"]),
    _c("electric_buzz", EVENT, ["Electricity crackles and sparks", "An electric buzz"], ["electric sparks", "an electric buzz"]),
    _c("ship", BED, ["A ship creaks on the water", "Oars splash and wood creaks"], ["a ship creaking", "a boat on the water"]),
    # signals and devices
    _c("bell", EVENT, ["A bell rings", "A bell chimes", "A small bell dings"], ["a bell ringing", "a chiming bell", "a bell"]),
    _c("alarm", EVENT, ["An alarm beeps", "An alarm clock rings", "A warning signal sounds"], ["an alarm", "an alarm beeping", "a warning signal"]),
    _c("beep", EVENT, ["A device beeps", "An electronic beep", "A short tone sounds"], ["a beep", "an electronic beep", "a short tone"]),
    _c("chime", EVENT, ["A notification chime plays", "An electronic chime sounds", "A gentle chime rings"], ["a notification chime", "an electronic chime", "a chime"]),
    _c("phone", EVENT, ["A phone rings", "A telephone rings"], ["a phone ringing", "a ringing telephone"]),
    _c("cash_register", EVENT, ["A cash register rings", "Coins jingle in a till"], ["a cash register", "a till ringing"]),
    _c("camera", EVENT, ["A camera shutter clicks", "A photo is taken"], ["a camera shutter", "a camera click"]),
    _c("click", EVENT, ["Something clicks", "A mechanical click"], ["a click", "clicking"]),
    _c("rattle", EVENT, ["Something rattles", "A shaker rattles"], ["a rattle", "rattling"]),
    # instruments (rendered) and drums (recorded)
    _c("piano", EVENT, ["A piano plays a few notes", "Piano notes ring out"], ["a piano", "piano notes", "a piano melody"]),
    _c("violin", EVENT, ["A violin plays", "A violin bows a melody"], ["a violin", "violin notes", "a violin melody"]),
    _c("cello", EVENT, ["A cello plays low notes", "A cello bows"], ["a cello", "cello notes"]),
    _c("flute", EVENT, ["A flute plays", "A flute whistles a tune"], ["a flute", "flute notes", "a flute melody"]),
    _c("trumpet", EVENT, ["A trumpet plays", "A trumpet blares a fanfare"], ["a trumpet", "trumpet notes", "a trumpet fanfare"]),
    _c("guitar", EVENT, ["A guitar is strummed", "An acoustic guitar plays"], ["a guitar", "guitar notes", "an acoustic guitar"]),
    _c("organ", EVENT, ["An organ plays chords", "A church organ sounds"], ["an organ", "organ chords", "a church organ"]),
    _c("clarinet", EVENT, ["A clarinet plays", "A clarinet melody"], ["a clarinet", "clarinet notes"]),
    _c("harp", EVENT, ["A harp is plucked", "Harp strings ring"], ["a harp", "harp notes", "a plucked harp"]),
    _c("xylophone", EVENT, ["A xylophone plays", "Mallets strike a xylophone"], ["a xylophone", "xylophone notes"]),
    _c("saxophone", EVENT, ["A saxophone plays", "A saxophone melody"], ["a saxophone", "saxophone notes"]),
    _c("accordion", EVENT, ["An accordion plays", "An accordion wheezes a tune"], ["an accordion", "accordion notes"]),
    _c("kick_drum", EVENT, ["A kick drum thumps", "A bass drum hits"], ["a kick drum", "a bass drum hit", "a thumping kick drum"]),
    _c("snare_drum", EVENT, ["A snare drum cracks", "A snare is hit"], ["a snare drum", "a snare hit"]),
    _c("hi_hat", EVENT, ["A hi-hat ticks", "A hi-hat cymbal sizzles"], ["a hi-hat", "a hi-hat cymbal"]),
    _c("cymbal", EVENT, ["A cymbal crashes", "A ride cymbal rings"], ["a cymbal crash", "a crashing cymbal", "a ride cymbal"]),
    _c("tom_drum", EVENT, ["A tom drum booms", "A tom-tom is struck"], ["a tom drum", "a tom-tom hit"]),
    _c("hand_clap", EVENT, ["Hands clap", "A single hand clap"], ["a hand clap", "clapping hands"]),
    _c("percussion", EVENT, ["A percussion instrument is struck", "A wooden percussion hit", "A cowbell clanks"], ["a percussion hit", "a woodblock", "a cowbell"]),
    # procedural (``--source synthetic``: tests and CI, no downloads)
    _c("tone", EVENT, ["A steady tone sounds", "A pure tone plays"], ["a steady tone", "a pure tone"]),
    _c("chirp", EVENT, ["A tone sweeps upward", "A rising chirp"], ["a rising chirp", "a sweeping tone"]),
    _c("noise_burst", EVENT, ["A burst of noise", "A short hiss"], ["a noise burst", "a short hiss"]),
    _c("clicks", EVENT, ["A train of clicks", "Rapid clicking"], ["a train of clicks", "rapid clicking"]),
    _c("warble", EVENT, ["A warbling tone", "A wobbling siren-like tone"], ["a warbling tone", "a wobbling tone"]),
    _c("hum", BED, ["A low hum drones", "An electrical hum"], ["a low hum", "a droning hum"]),
    _c("pink_noise", BED, ["Soft noise rushes steadily", "A steady rushing noise"], ["steady rushing noise", "soft noise"]),
]}

# Ordered (regex, class) pairs over a lower-cased descriptor; the first match wins. Rules that
# exclude (class None) come first so that e.g. 0 A.D. music or UI stings never become events.
LABEL_RULES: list[tuple[str, str | None]] = [
    (r"/music/|\.xml|\.xmb|\.sfk|licen[cs]e\.txt|unused/nothing", None),
    (r"interface/(select|complete)/|gamesetup|alarm_invalid|alarm_no_idle", None),
    (r"pig", "pig"), (r"cattle|\bcow\b|\"cow\"", "cow"), (r"sheep", "sheep"), (r"goat", "goat"),
    (r"chicken", "chicken"), (r"camel", "camel"), (r"elephant", "elephant"), (r"lion", "lion"),
    (r"peacock", "peacock"), (r"monkey", "monkey"), (r"dog_bark|kennel", "dog"),
    (r"horse|mounted/movement|mstep", "horse"), (r"flamingo|tropical: bird|bird", "bird"),
    (r"death_animal|animal_death", None),
    (r"window(open|close)", None), (r"window-(attention|question)", "chime"),
    (r"thunder", "thunder"), (r"(?<![a-z])rain", "rain"),
    (r"wind(?!mill|ow)|snowstorm|snow\.|windleaves", "wind"),
    (r"waterfall", "waterfall"), (r"river|parklandlake|water[0-9]", "river"),
    (r"wave|coastline|beach", "waves"),
    (r"crackling|spreading|attack/fire/|fire[0-9]|firewasteland", "fire"),
    (r"dayscape|green[0-9]|parklandplane|farm[0-9]|organicfarm", "countryside"),
    (r"splat|splash", "water_splash"), (r"bubble", "bubbles"),
    (r"footstep|foorstep|singlesteps|hstep|/walk|run\.", "footsteps"),
    (r"human/death|death/death|male_death|female_death", "scream"),
    (r"voice/.*female", "female_shout"), (r"voice/.*male", "male_shout"),
    (r"applause|oooh", "applause"), (r"sportscroud|market(full|med|low)|commune", "crowd"),
    (r"sawmill|chainsaw|circular saw", "power_saw"), (r"con_saw|\bsaw\b", "saw"),
    (r"jackhammer", "jackhammer"), (r"falling tree|crashing tree|treefall", "tree_fall"),
    (r"lumber|chop", "axe"), (r"mine_stone|mine_metal|pickaxe|oremine|coalmine", "pickaxe"),
    (r"con_stone|con_wood|blacksmith|smithy|building bridge|hammer", "hammer"),
    (r"hoe|forag|leaves|gather_field|gather_fruit", "digging"),
    (r"swordhit|sword|shield_metal|knife", "sword"), (r"arrow|javelin|jav_attack|bow_attack", "arrow"),
    (r"sling|spear|pike|whoosh|swosh", "whoosh"),
    (r"explo|rocketexplosion", "explosion"), (r"crash|collapse|raze|breakdown|debris", "crash"),
    (r"musket|gun", "gunshot"), (r"impact|flesh|shield_wood|siege|ram_|onager|ballist", "impact"),
    (r"gate", "gate"), (r"window(open|close)|door", "door"),
    (r"train|railtrain|locomotive|level crossing", "train"),
    (r"horn", "horn"), (r"jet|plane|propeller|rocket", "aircraft"), (r"helicopter", "helicopter"),
    (r"bus start|truck|car start|engine|dirttrack", "engine"),
    (r"trafic|traffic", "traffic"),
    (r"industry|mill[0-9]|machinery|factory|powercoal|substation|recycle|pottery|tip[0-9]|mining machinery", "machinery"),
    (r"sparking|electric|powerline", "electric_buzz"), (r"(?<![a-z])(ship|boat|harbor|port)(?![a-z])", "ship"),
    (r"cash till|cash", "cash_register"), (r"camera|screen-capture", "camera"),
    (r"phone", "phone"), (r"bell", "bell"), (r"alarm|warning|morse|attention|error", "alarm"),
    (r"beep|audio-test|audio-volume", "beep"),
    (r"complete|message|dialog|service-log|device-|power-(un)?plug|network-|trash|question|chat_alert|good year|bad year", "chime"),
    (r"click", "click"), (r"shaker|sugar mine|maraca", "rattle"),
]

# Drum-kit instrument names (hydrogen drumkit.xml) map with their own rules: the same words
# ("crash", "bell") mean something else there.
DRUM_RULES: list[tuple[str, str]] = [
    (r"kick|bass ?drum|bassdrum|\bbd\b|\bkik", "kick_drum"),
    (r"snare|rim|\bsd\b|stick", "snare_drum"),
    (r"hh|hat|hihat|hi-hat", "hi_hat"),
    (r"crash|ride|splash|cymbal|china|cym", "cymbal"),
    (r"tom", "tom_drum"),
    (r"clap|snap", "hand_clap"),
    (r"cowbell|block|clave|bongo|conga|cajon|tamb|maraca|shake|glass|perc|bell|drum", "percussion"),
]


# OpenTTD's OpenSFX names its 71 sounds with a caption, so they are labelled by hand; None
# leaves a sound out (jingles, and sounds that mix two events such as "bus start with horn").
OPENSFX_LABELS: dict[str, str | None] = {
    "Splat (building docks/canals/river)": "water_splash", "Steam train station departure": "train",
    "Steam engine going in tunnel": "train", "Ship horn": "horn", "Ferry horn": "horn",
    "Propeller plane start": "aircraft", "Early jet take off": "aircraft", "Diesel/electric train station departure": "train",
    "Mining machinery": "machinery", "Electric sparking": "electric_buzz", "Level crossing": "bell",
    "Road vehicle breakdown": "impact", "Train/ship breakdown": "impact", "Crash": "crash", "Explosion": "explosion",
    "Big crash": "crash", "Cash till": "cash_register", "Beep": "beep", "Morse": "beep", "Helicopter": "helicopter",
    "Truck/old bus start, pull away": "engine", "Modern bus start": "engine", "Old bus start": "engine",
    "Applause": "applause", "Splat (terraform/non-rail builds": "impact", "Splat (rail builds)": "impact",
    "Jackhammer": "jackhammer", "Modern car horn": "horn", "Sheep": "sheep", "Cow": "cow", "Horse": "horse",
    "Building bridge": "hammer", "Sawmill": "power_saw", "Toyland: Sugar mine (1)": "rattle",
    "Toyland: Sugar mine (2)": "rattle", "Toyland: Bubble generated": "bubbles", "Toyland: Bubble plop": "bubbles",
    "Wind": "wind", "Heavy wind": "wind", "Lumber mill: Crashing tree": "tree_fall", "Lumber mill: Falling tree": "tree_fall",
    "Lumber mill: Chainsaw": "power_saw", "Mach 1+ Jet take off": "aircraft", "Modern jet take off": "aircraft",
    "Maglev train station departure": "train", "Monorail train station departure": "train",
    "Tropical: Bird (1)": "bird", "Tropical: Bird (2)": "bird", "Tropical: Lion roar": "lion",
    "Tropical: Monkeys": "monkey", "Toyland: Propeller plane take off": "aircraft",
}


def label_for(descriptor: str, rules: list[tuple[str, str | None]] | None = None) -> str | None:
    """The class of a source descriptor, or None when no rule claims it (or a rule excludes it)."""
    text = descriptor.lower()
    for pattern, label in LABEL_RULES if rules is None else rules:
        if re.search(pattern, text):
            return label
    return None


def sound_class(name: str) -> SoundClass:
    """The class called ``name``; corpora ingested from captions use ad-hoc labels, see ``adhoc_class``."""
    return CLASSES[name] if name in CLASSES else adhoc_class(name)


def adhoc_class(caption: str, role: str = EVENT) -> SoundClass:
    """A class for a clip known only by its caption (an ingested corpus): the caption is both forms."""
    text = caption.strip().rstrip(".")
    phrase = text[0].lower() + text[1:] if text else "a sound"
    return SoundClass(text, role, (text,), (phrase,))
